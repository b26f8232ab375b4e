"""The internal plane between the frontend and its workers: one authenticated TCP connection per worker, many
requests multiplexed on it.

Why not HTTP: each request crossed three HTTP exchanges (prefix match, prefill, generate), and aiohttp's request
handling on both ends was most of the runtime's CPU per request (issue 13's profile). A frame here is
`[u32 length][u32 header length][JSON header][binary body]`; a request carries an `id` the answers repeat, so a
stream of tokens is frames with the same id, written without waiting (the kernel coalesces them).

Who may talk: the supervisor gives each run's processes a secret in their environment (identity.py). A connection
starts with a mutual challenge: each side proves it knows the secret with an HMAC over the other's nonce, so a
process that does not know it can neither send a request nor pose as a worker. Closing a connection cancels every
request it carried (a frontend that dies takes its requests' engine work with it).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import os
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

_LEN = struct.Struct(">II")
MAX_FRAME = 1 << 30  # a KV body over the channel (no NIXL) may be large; anything bigger is a broken peer
HANDSHAKE_TIMEOUT = 5.0


class ChannelError(Exception):
    """The peer is gone, refused us, or broke the protocol; `reason` is a metric label."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class RemoteError(Exception):
    """The peer answered a request with an error (`reason` is its label, `detail` its words)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


def pack_tokens(tokens: list[int]) -> bytes:
    """Token ids as a frame body (uint32): a 200-token prompt in JSON was the frontend's largest cost per frame."""
    from array import array

    return array("I", tokens).tobytes()


def tokens_of(header: dict, body: bytes) -> tuple[list[int], bytes]:
    """(the request's token ids, the rest of its body): ids packed at the start of the body (`ntok` of them), or in
    the header (`tokens`)."""
    n = header.get("ntok")
    if n is None:
        return list(header.get("tokens") or ()), body
    from array import array

    ids = array("I")
    ids.frombytes(body[: 4 * n])
    return ids.tolist(), body[4 * n :]


def encode(header: dict, body: bytes | memoryview = b"") -> list[bytes | memoryview]:
    head = json.dumps(header, separators=(",", ":")).encode()
    return [_LEN.pack(4 + len(head) + len(body), len(head)), head, body] if body else [_LEN.pack(4 + len(head), len(head)), head]


async def read_frame(reader: asyncio.StreamReader) -> tuple[dict, bytes]:
    prefix = await reader.readexactly(8)
    total, head_len = _LEN.unpack(prefix)
    if total > MAX_FRAME or head_len > total - 4:
        raise ChannelError("protocol", f"frame of {total} bytes")
    data = await reader.readexactly(total - 4)
    try:
        header = json.loads(data[:head_len])
    except ValueError:
        raise ChannelError("protocol", "header is not JSON") from None
    if not isinstance(header, dict):
        raise ChannelError("protocol", "header is not an object")
    return header, data[head_len:]


class Coalescer:
    """Frames written during one turn of the event loop go out in one send: under load a decode step's tokens for
    every sequence on a connection, or a burst of requests, cost one syscall instead of one each."""

    __slots__ = ("writer", "parts", "scheduled")

    def __init__(self, writer: asyncio.StreamWriter):
        self.writer, self.parts, self.scheduled = writer, [], False

    def write(self, parts: list) -> None:
        self.parts.extend(parts)
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        if self.parts and not self.writer.is_closing():
            self.writer.write(b"".join(self.parts))
        self.parts = []


def _proof(secret: bytes, nonce: bytes, side: bytes) -> str:
    return hmac.new(secret, side + nonce, hashlib.sha256).hexdigest()


async def _send(writer: asyncio.StreamWriter, header: dict, body: bytes = b"") -> None:
    writer.writelines(encode(header, body))
    await writer.drain()


# ---- client (the frontend's side) ------------------------------------------------------------------------------


class Channel:
    """One authenticated connection to a worker; `call` for one answer, `stream` for many. Reconnects on demand."""

    def __init__(self, host: str, port: int, secret: bytes, name: str = ""):
        self.host, self.port, self.secret, self.name = host, port, secret, name or f"{host}:{port}"
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Queue | asyncio.Future] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._out: Coalescer | None = None
        self._reader_task: asyncio.Task | None = None
        self._connecting: asyncio.Lock | None = None
        self.peer: dict = {}  # what the worker said about itself in the handshake

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def connect(self, timeout: float = 2.0) -> None:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self.connected:
                return
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), timeout)
            except (OSError, asyncio.TimeoutError) as exc:
                raise ChannelError("connect", f"{self.name}: {exc or type(exc).__name__}") from None
            try:
                hello, _ = await asyncio.wait_for(read_frame(reader), HANDSHAKE_TIMEOUT)
                mine = os.urandom(16)
                await _send(writer, {"proof": _proof(self.secret, bytes.fromhex(hello["nonce"]), b"client"), "nonce": mine.hex()})
                answer, _ = await asyncio.wait_for(read_frame(reader), HANDSHAKE_TIMEOUT)
                if not hmac.compare_digest(str(answer.get("proof", "")), _proof(self.secret, mine, b"server")):
                    raise ChannelError("auth", f"{self.name} is not a worker of this run")
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, KeyError, ValueError) as exc:
                writer.close()
                raise ChannelError("auth", f"{self.name}: handshake failed ({type(exc).__name__})") from None
            except ChannelError:
                writer.close()
                raise
            self.peer = answer.get("peer", {})
            self._writer = writer
            self._out = Coalescer(writer)
            self._reader_task = asyncio.get_running_loop().create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        error = ChannelError("disconnected", self.name)
        try:
            while True:
                header, body = await read_frame(reader)
                target = self._pending.get(header.get("id"))
                if target is None:
                    continue  # an answer to a request its caller gave up on
                if isinstance(target, asyncio.Future):
                    if not target.done():
                        target.set_result((header, body))
                else:
                    target.put_nowait((header, body))
        except (OSError, asyncio.IncompleteReadError) as exc:
            error = ChannelError("disconnected", f"{self.name}: {type(exc).__name__}")
        except ChannelError as exc:
            error = exc
        finally:
            if self._writer is not None:
                self._writer.close()
            self._writer = None
            for target in self._pending.values():
                if isinstance(target, asyncio.Future):
                    if not target.done():
                        target.set_exception(error)
                else:
                    target.put_nowait(error)
            self._pending.clear()

    def _write(self, header: dict, body: bytes = b"") -> None:
        if self._writer is None or self._out is None:
            raise ChannelError("disconnected", self.name)
        self._out.write(encode(header, body))

    async def call(self, op: str, timeout: float | None = None, body: bytes = b"", **fields: Any) -> tuple[dict, bytes]:
        """Send one request; its one answer (header, body). Raises RemoteError for an error answer."""
        if not self.connected:
            await self.connect()
        rid = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            self._write({"id": rid, "op": op, **fields}, body)
            # Not wait_for: on 3.11 it swallows a cancel that lands as the result arrives (python/cpython#86296, fixed in
            # 3.12), so a drained request kept streaming after its cancel. asyncio.timeout does not.
            async with asyncio.timeout(timeout):
                header, data = await fut
        except asyncio.TimeoutError:
            self.cancel(rid)
            raise
        except asyncio.CancelledError:
            self.cancel(rid)
            raise
        finally:
            self._pending.pop(rid, None)
        if "error" in header:
            raise RemoteError(header["error"], header.get("detail", ""))
        return header, data

    async def stream(self, op: str, body: bytes = b"", idle_timeout: float | None = None, **fields: Any) -> AsyncIterator[tuple[dict, bytes]]:
        """Send one request and yield its answers until one says `end` (or is an error, raised as RemoteError).
        `idle_timeout`: seconds without an answer before ChannelError("timeout")."""
        from contextlib import aclosing

        async with aclosing(self.stream_batches(op, body, idle_timeout, **fields)) as batches:
            async for batch in batches:
                for item in batch:
                    yield item

    async def stream_batches(self, op: str, body: bytes = b"", idle_timeout: float | None = None, **fields: Any) -> AsyncIterator[list[tuple[dict, bytes]]]:
        """As `stream`, but each step yields every answer that has arrived (one or more): a consumer that falls
        behind catches up in one step (one client write for many tokens) instead of one per answer."""
        if not self.connected:
            await self.connect()
        rid = next(self._ids)
        queue: asyncio.Queue = asyncio.Queue()
        self._pending[rid] = queue
        finished = False
        try:
            self._write({"id": rid, "op": op, **fields}, body)
            while True:
                if idle_timeout is None or not queue.empty():
                    items = [await queue.get()]
                else:
                    try:
                        async with asyncio.timeout(idle_timeout):  # not wait_for (python/cpython#86296, see call)
                            items = [await queue.get()]
                    except asyncio.TimeoutError:
                        raise ChannelError("timeout", f"{self.name}: no answer for {idle_timeout:g} s") from None
                while not queue.empty():
                    items.append(queue.get_nowait())
                batch = []
                for item in items:
                    if isinstance(item, Exception):
                        raise item
                    header, data = item
                    if "error" in header:
                        finished = True
                        raise RemoteError(header["error"], header.get("detail", ""))
                    batch.append(item)
                    if header.get("end"):
                        finished = True
                        break
                yield batch
                if finished:
                    return
        finally:
            self._pending.pop(rid, None)
            if not finished:
                self.cancel(rid)  # the caller stopped listening (its client went away): stop the work too

    def cancel(self, rid: int) -> None:
        if self._out is not None and self._writer is not None and not self._writer.is_closing():
            self._out.write(encode({"id": 0, "op": "cancel", "target": rid}))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()


# ---- server (a worker's side) ----------------------------------------------------------------------------------

Handler = Callable[["Request"], Awaitable[None]]


class Request:
    """One request on a connection: its header and body, and how to answer (once, or many times)."""

    __slots__ = ("header", "body", "_conn", "id")

    def __init__(self, header: dict, body: bytes, conn: "_ServerConnection"):
        self.header, self.body, self._conn, self.id = header, body, conn, header.get("id")

    @property
    def op(self) -> str:
        return self.header.get("op", "")

    def send(self, header: dict, body: bytes | memoryview = b"") -> None:
        self._conn.write({"id": self.id, **header}, body)

    def error(self, reason: str, detail: str = "") -> None:
        self.send({"error": reason, "detail": detail, "end": True})

    async def drain(self) -> None:
        await self._conn.drain()


class _ServerConnection:
    def __init__(self, writer: asyncio.StreamWriter):
        self.writer = writer
        self.out = Coalescer(writer)
        self.tasks: dict[Any, asyncio.Task] = {}

    def write(self, header: dict, body: bytes | memoryview = b"") -> None:
        if not self.writer.is_closing():
            self.out.write(encode(header, body))

    async def drain(self) -> None:
        if not self.writer.is_closing():
            self.out.flush()
            await self.writer.drain()


class ChannelServer:
    """Accepts authenticated connections and runs `handler` for each request, as its own task."""

    def __init__(self, handler: Handler, secret: bytes, peer: dict, on_reject: Callable[[str], None] | None = None):
        self.handler, self.secret, self.peer = handler, secret, peer
        self.on_reject = on_reject or (lambda reason: None)
        self.connections: set[_ServerConnection] = set()

    async def start(self, host: str, port: int, sock=None) -> asyncio.AbstractServer:
        """Listen on host:port, or on `sock` (a listening socket the supervisor bound and handed over)."""
        if sock is not None:
            return await asyncio.start_server(self._serve, sock=sock, limit=2**20)
        return await asyncio.start_server(self._serve, host, port, limit=2**20, reuse_address=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            nonce = os.urandom(16)
            await _send(writer, {"nonce": nonce.hex()})
            answer, _ = await asyncio.wait_for(read_frame(reader), HANDSHAKE_TIMEOUT)
            if not hmac.compare_digest(str(answer.get("proof", "")), _proof(self.secret, nonce, b"client")):
                self.on_reject("auth")
                writer.close()
                return
            await _send(writer, {"proof": _proof(self.secret, bytes.fromhex(answer["nonce"]), b"server"), "peer": self.peer})
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ChannelError, KeyError, ValueError):
            self.on_reject("handshake")
            writer.close()
            return
        conn = _ServerConnection(writer)
        self.connections.add(conn)
        loop = asyncio.get_running_loop()
        try:
            while True:
                header, body = await read_frame(reader)
                if header.get("op") == "cancel":
                    task = conn.tasks.get(header.get("target"))
                    if task is not None:
                        task.cancel()
                    continue
                req = Request(header, body, conn)
                task = loop.create_task(self._run(req))
                conn.tasks[req.id] = task
                task.add_done_callback(lambda t, rid=req.id: conn.tasks.pop(rid, None))
        except (OSError, asyncio.IncompleteReadError, ChannelError):
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


def probe(host: str, port: int, secret: bytes, timeout: float = 2.0) -> dict | None:
    """A blocking health check for the supervisor (which runs no event loop): handshake, `health`, close.
    The worker's health answer, or None when it does not answer in time or is not a worker of this run."""
    import socket

    def read(sock: socket.socket) -> dict:
        buf = b""
        while len(buf) < 8:
            chunk = sock.recv(8 - len(buf))
            if not chunk:
                raise OSError("closed")
            buf += chunk
        total, head_len = _LEN.unpack(buf)
        if total > 1 << 20:
            raise OSError("frame too large")
        data = b""
        while len(data) < total - 4:
            chunk = sock.recv(total - 4 - len(data))
            if not chunk:
                raise OSError("closed")
            data += chunk
        return json.loads(data[:head_len])

    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            hello = read(sock)
            mine = os.urandom(16)
            sock.sendall(b"".join(encode({"proof": _proof(secret, bytes.fromhex(hello["nonce"]), b"client"), "nonce": mine.hex()})))
            answer = read(sock)
            if not hmac.compare_digest(str(answer.get("proof", "")), _proof(secret, mine, b"server")):
                return None
            sock.sendall(b"".join(encode({"id": 1, "op": "health"})))
            return read(sock)
    except (OSError, ValueError, KeyError):
        return None
