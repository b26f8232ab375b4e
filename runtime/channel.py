"""The internal plane between the frontend and its workers: one authenticated TCP connection per worker, many
requests multiplexed on it.

Why not HTTP: each request crossed three HTTP exchanges (prefix match, prefill, generate), and aiohttp's request
handling on both ends was most of the runtime's CPU per request (issue 13's profile). A frame here is
`[u32 length][u32 header length][JSON header][binary body]`; a request carries an `id` the answers repeat, so a
stream of tokens is frames with the same id, written without waiting (the kernel coalesces them). This file is the
framing and the caller's side; channel_server.py is a worker's side and the supervisor's blocking probe.

Who may talk: the supervisor gives each run's processes a secret in their environment (identity.py). A connection
starts with a mutual proof bound to both nonces, the worker id the caller expects and the address it dialled; every
frame after it is sealed (secure.py: AEAD, one key and counter per direction). A process that does not know the
secret can neither send a request nor pose as a worker, and one that relays a handshake between a caller and a
worker gets no key: the worker refuses a proof made for another address or id. Before the proofs a peer is a
stranger: its frames are capped at MAX_PREAUTH bytes, the handshake must end within HANDSHAKE_TIMEOUT, and a worker
holds at most MAX_PENDING connections in handshake (the oldest is dropped for a new one). Closing a connection cancels
every request it carried (a frontend that dies takes its requests' engine work with it).
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import os
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from .secure import NONCE_BYTES, TAG, VERSION, Keys, Opener, Sealer, SealError, SecureReader

_LEN = struct.Struct(">II")
MAX_FRAME = 1 << 30  # after the handshake: a KV body over the channel (no NIXL) may be large; bigger is a broken peer
MAX_PREAUTH = 4096  # before it: the hello, the proofs (a few hundred bytes); a bigger frame closes the connection
HANDSHAKE_TIMEOUT = 5.0  # seconds from accept (or connect) to the end of the proofs
MAX_PENDING = 32  # connections a worker holds in handshake at once; the oldest is dropped for a new one
READ_LIMIT = 1 << 16  # StreamReader buffer: a stranger's unread bytes stay under ~2x this per connection


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


class PromptIds(list):
    """A prompt's token ids (a list, for whatever reads them as one; never changed once made) with their uint32
    packing for the channel made once, not per call: the frontend hands the same prompt to a decode worker twice
    (prefix match, generate) and to a prefill worker."""

    __slots__ = ("_packed",)

    def __init__(self, ids, packed: bytes | None = None):
        super().__init__(ids)
        self._packed = packed

    @property
    def packed(self) -> bytes:
        if self._packed is None:
            from array import array

            self._packed = array("I", self).tobytes()
        return self._packed


def pack_tokens(tokens) -> bytes:
    """Token ids as a frame body (uint32): a 200-token prompt in JSON was the frontend's largest cost per frame. Ids
    that come packed already (the frontend's `PromptIds`, a uint32 array) are not packed again."""
    packed = getattr(tokens, "packed", None)
    if packed is not None:
        return packed
    from array import array

    return array("I", tokens).tobytes()


def token_ids_of(header: dict, body: bytes):
    """(the request's token ids, the rest of its body): ids packed at the start of the body (`ntok` of them), or in
    the header (`tokens`), as a uint32 numpy array: a view of the packed body, not a list (a list of 8,000 ids, then
    an array again for the KV, cost the prefill worker ~0.15 ms a request)."""
    import numpy as np

    n = header.get("ntok")
    if n is None:
        return np.asarray(header.get("tokens") or (), dtype=np.uint32), body
    return np.frombuffer(body, dtype=np.uint32, count=n), body[4 * n :]


def encode(header: dict, body: bytes | memoryview = b"") -> list[bytes | memoryview]:
    head = json.dumps(header, separators=(",", ":")).encode()
    return [_LEN.pack(4 + len(head) + len(body), len(head)), head, body] if body else [_LEN.pack(4 + len(head), len(head)), head]


async def read_frame(reader, limit: int = MAX_FRAME) -> tuple[dict, bytes]:
    """One frame from a StreamReader (the handshake, `limit` MAX_PREAUTH) or a SecureReader (after it)."""
    prefix = await reader.readexactly(8)
    total, head_len = _LEN.unpack(prefix)
    if total > limit or total < 4 or head_len > total - 4:
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

    __slots__ = ("writer", "sealer", "parts", "scheduled")

    def __init__(self, writer: asyncio.StreamWriter, sealer: Sealer):
        self.writer, self.sealer, self.parts, self.scheduled = writer, sealer, [], False

    def write(self, parts: list) -> None:
        self.parts.extend(parts)
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        if self.parts and not self.writer.is_closing():
            self.writer.write(self.sealer.seal(b"".join(self.parts)))  # one record per turn of the loop
        self.parts = []


def _nonce(text: Any) -> bytes:
    raw = bytes.fromhex(text) if isinstance(text, str) else b""
    if len(raw) != NONCE_BYTES:
        raise ValueError("bad nonce")
    return raw


def address_of(host: str, port: int) -> str:
    """The address a handshake is bound to: as registered and dialled (a host name stays a name)."""
    return f"{host}:{port}"


async def _send(writer: asyncio.StreamWriter, header: dict, body: bytes = b"") -> None:
    writer.writelines(encode(header, body))
    await writer.drain()


# ---- client (the frontend's side) ------------------------------------------------------------------------------


class Channel:
    """One authenticated connection to worker `worker_id` at host:port; `call` for one answer, `stream` for many.
    Reconnects on demand. The handshake is bound to that id and address: a process elsewhere that relays to the
    worker, or a worker registered under another id, fails it."""

    def __init__(self, host: str, port: int, secret: bytes, worker_id: str):
        self.host, self.port, self.secret, self.worker_id = host, port, secret, worker_id
        self.name = f"{worker_id} at {address_of(host, port)}"
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Queue | asyncio.Future] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._out: Coalescer | None = None
        self._reader_task: asyncio.Task | None = None
        self._connecting: asyncio.Lock | None = None
        self.peer: dict = {}  # what the worker said about itself, sealed, right after the proofs

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
                reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port, limit=READ_LIMIT), timeout)
            except (OSError, asyncio.TimeoutError) as exc:
                raise ChannelError("connect", f"{self.name}: {exc or type(exc).__name__}") from None
            try:
                async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                    secure, sealer, peer = await self._handshake(reader, writer)
            except (OSError, asyncio.TimeoutError, KeyError, ValueError, SealError) as exc:
                writer.close()
                raise ChannelError("auth", f"{self.name}: handshake failed ({type(exc).__name__})") from None
            except ChannelError:
                writer.close()
                raise
            self.peer = peer
            self._writer = writer
            self._out = Coalescer(writer, sealer)
            self._reader_task = asyncio.get_running_loop().create_task(self._read(secure))

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[SecureReader, Sealer, dict]:
        try:
            hello, _ = await read_frame(reader, MAX_PREAUTH)
        except asyncio.IncompleteReadError:
            raise ChannelError("auth", f"{self.name} closed the connection before its hello (busy, or not a worker)") from None
        if hello.get("v") != VERSION:
            raise ChannelError("auth", f"{self.name} speaks channel version {hello.get('v', 1)!r}, not {VERSION}: a worker of another disagg release?")
        mine = os.urandom(NONCE_BYTES)
        keys = Keys(self.secret, _nonce(hello.get("nonce")), mine, self.worker_id, address_of(self.host, self.port))
        await _send(writer, {"nonce": mine.hex(), "proof": keys.client_proof})
        try:
            answer, _ = await read_frame(reader, MAX_PREAUTH)
        except asyncio.IncompleteReadError:
            raise ChannelError("auth", f"{self.name} refused our proof: no worker of this run answers as {self.worker_id!r} at that address") from None
        if not hmac.compare_digest(str(answer.get("proof", "")), keys.server_proof):
            raise ChannelError("auth", f"{self.name} is not a worker of this run")
        secure = SecureReader(reader, Opener(keys.s2c), MAX_FRAME + TAG)
        first, _ = await read_frame(secure)
        peer = first.get("peer") if isinstance(first.get("peer"), dict) else {}
        if peer.get("worker_id", self.worker_id) != self.worker_id:
            raise ChannelError("auth", f"{self.name} says it is {peer.get('worker_id')!r}")
        return secure, Sealer(keys.c2s), peer

    async def _read(self, reader: SecureReader) -> None:
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
        except SealError as exc:
            error = ChannelError("protocol", f"{self.name}: {exc}")
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


# ---- a request as a worker sees it (the listener is channel_server.py) ----------------------------------------

Handler = Callable[["Request"], Awaitable[None]]


class Request:
    """One request on a connection: its header and body, and how to answer (once, or many times)."""

    __slots__ = ("header", "body", "_conn", "id")

    def __init__(self, header: dict, body: bytes, conn: Any):  # channel_server._ServerConnection
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
