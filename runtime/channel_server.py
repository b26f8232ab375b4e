"""The internal channel, a worker's side (channel.py has the framing and the caller's side): accept connections,
prove this worker to callers that dialled its registered address for its id, run each request as its own task; and
the supervisor's blocking health probe, which is the same handshake without an event loop."""

from __future__ import annotations

import asyncio
import hmac
import json
import os
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .channel import (
    _LEN,
    HANDSHAKE_TIMEOUT,
    MAX_FRAME,
    MAX_PENDING,
    MAX_PREAUTH,
    READ_LIMIT,
    ChannelError,
    Coalescer,
    Handler,
    RemoteError,
    Request,
    _nonce,
    _send,
    address_of,
    encode,
    read_frame,
)
from .secure import NONCE_BYTES, TAG, VERSION, Keys, Opener, Sealer, SealError, SecureReader, record_length


class _ServerConnection:
    def __init__(self, writer: asyncio.StreamWriter, sealer: Sealer):
        self.writer = writer
        self.out = Coalescer(writer, sealer)
        self.tasks: dict[Any, asyncio.Task] = {}

    def write(self, header: dict, body: bytes | memoryview = b"") -> None:
        if not self.writer.is_closing():
            self.out.write(encode(header, body))

    async def drain(self) -> None:
        if not self.writer.is_closing():
            self.out.flush()
            await self.writer.drain()


class ChannelServer:
    """Accepts authenticated connections and runs `handler` for each request, as its own task.

    `peer` is what the worker tells a caller about itself (sealed); its `worker_id` and `address` (host:port, as
    registered; by default the address each connection arrived at) are what a caller's proof must be bound to."""

    def __init__(self, handler: Handler, secret: bytes, peer: dict, on_reject: Callable[[str], None] | None = None, address: str | None = None,
                 handshake_timeout: float = HANDSHAKE_TIMEOUT, max_pending: int = MAX_PENDING):
        self.handler, self.secret, self.peer, self.address = handler, secret, peer, address
        self.worker_id = str(peer.get("worker_id", ""))
        self.on_reject = on_reject or (lambda reason: None)
        self.handshake_timeout, self.max_pending = handshake_timeout, max_pending
        self.connections: set[_ServerConnection] = set()
        self.pending: OrderedDict[int, asyncio.StreamWriter] = OrderedDict()  # in handshake, oldest first

    async def start(self, host: str, port: int, sock=None) -> asyncio.AbstractServer:
        """Listen on host:port, or on `sock` (a listening socket the supervisor bound and handed over)."""
        if sock is not None:
            return await asyncio.start_server(self._serve, sock=sock, limit=READ_LIMIT)
        return await asyncio.start_server(self._serve, host, port, limit=READ_LIMIT, reuse_address=True)

    def _address(self, writer: asyncio.StreamWriter) -> str:
        if self.address:
            return self.address
        local = writer.get_extra_info("sockname") or ("", 0)
        return address_of(local[0], local[1])

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Keys | None:
        nonce = os.urandom(NONCE_BYTES)
        await _send(writer, {"v": VERSION, "nonce": nonce.hex()})
        answer, _ = await read_frame(reader, MAX_PREAUTH)
        keys = Keys(self.secret, nonce, _nonce(answer.get("nonce")), self.worker_id, self._address(writer))
        if not hmac.compare_digest(str(answer.get("proof", "")), keys.client_proof):
            return None
        await _send(writer, {"proof": keys.server_proof})
        return keys

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self.pending) >= self.max_pending:  # a flood of strangers: the oldest handshake goes, not the newest
            _, oldest = self.pending.popitem(last=False)
            oldest.close()
            self.on_reject("busy")
        key = id(writer)
        self.pending[key] = writer
        keys = None
        try:
            async with asyncio.timeout(self.handshake_timeout):
                keys = await self._handshake(reader, writer)
            if keys is None:
                self.on_reject("auth")
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ChannelError, KeyError, ValueError, AttributeError):
            self.on_reject("handshake")
        finally:
            self.pending.pop(key, None)
        if keys is None or writer.is_closing():
            writer.close()
            return
        conn = _ServerConnection(writer, Sealer(keys.s2c))
        conn.write({"peer": self.peer})
        secure = SecureReader(reader, Opener(keys.c2s), MAX_FRAME + TAG)
        self.connections.add(conn)
        loop = asyncio.get_running_loop()
        try:
            while True:
                header, body = await read_frame(secure)
                if header.get("op") == "cancel":
                    task = conn.tasks.get(header.get("target"))
                    if task is not None:
                        task.cancel()
                    continue
                req = Request(header, body, conn)
                task = loop.create_task(self._run(req))
                conn.tasks[req.id] = task
                task.add_done_callback(lambda t, rid=req.id: conn.tasks.pop(rid, None))
        except (OSError, asyncio.IncompleteReadError, ChannelError, SealError):
            pass
        finally:
            self.connections.discard(conn)
            for task in list(conn.tasks.values()):
                task.cancel()  # the peer is gone: nobody will read these answers
            writer.close()

    async def _run(self, req: Request) -> None:
        try:
            await self.handler(req)
        except asyncio.CancelledError:
            raise
        except RemoteError as exc:
            req.error(exc.reason, exc.detail)
        except Exception as exc:  # noqa: BLE001 - one bad request must not take the worker down; it is answered
            req.error("internal", f"{type(exc).__name__}: {exc}")


def probe(host: str, port: int, secret: bytes, worker_id: str, timeout: float = 2.0) -> dict | None:
    """A blocking health check for the supervisor (which runs no event loop): handshake, `health`, close.
    The worker's health answer, or None when it does not answer in time or is not worker `worker_id` of this run at
    host:port. The handshake is the proof that it is ours: no run id needs to be published for this."""
    import socket

    def exactly(sock: socket.socket, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise OSError("closed")
            buf += chunk
        return bytes(buf)

    def frame(data: bytes) -> dict:
        total, head_len = _LEN.unpack(data[:8])
        header = json.loads(data[8 : 8 + head_len])
        if not isinstance(header, dict):
            raise ValueError("header is not an object")
        return header

    def plain(sock: socket.socket) -> dict:
        prefix = exactly(sock, 8)
        total, _ = _LEN.unpack(prefix)
        if not 4 <= total <= MAX_PREAUTH:
            raise ValueError("frame too large")
        return frame(prefix + exactly(sock, total - 4))

    def sealed(sock: socket.socket, opener: Opener) -> dict:
        prefix = exactly(sock, 4)
        size = record_length(prefix)
        if not TAG <= size <= 1 << 20:
            raise ValueError("record too large")
        return frame(opener.open(prefix, exactly(sock, size)))  # a health answer is the record's first frame

    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            hello = plain(sock)
            mine = os.urandom(NONCE_BYTES)
            keys = Keys(secret, _nonce(hello.get("nonce")), mine, worker_id, address_of(host, port))
            sock.sendall(b"".join(encode({"nonce": mine.hex(), "proof": keys.client_proof})))
            if not hmac.compare_digest(str(plain(sock).get("proof", "")), keys.server_proof):
                return None
            opener = Opener(keys.s2c)
            peer = sealed(sock, opener).get("peer") or {}
            if peer.get("worker_id", worker_id) != worker_id:
                return None
            sock.sendall(Sealer(keys.c2s).seal(b"".join(encode({"id": 1, "op": "health"}))))
            return sealed(sock, opener)
    except (OSError, ValueError, KeyError, SealError):
        return None
