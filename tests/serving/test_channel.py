"""The internal channel on loopback: only the run's processes talk on it, and a closed connection stops its work."""

from __future__ import annotations

import asyncio

import pytest

from disagg.runtime.channel import Channel, ChannelError, RemoteError
from disagg.runtime.channel_server import ChannelServer, probe

SECRET = b"secret of this run"


async def _server(handler, secret=SECRET, rejected=None):
    server = ChannelServer(handler, secret, {"worker_id": "w"}, on_reject=(rejected.append if rejected is not None else None))
    listener = await server.start("127.0.0.1", 0)
    return listener, listener.sockets[0].getsockname()[1]


def test_calls_streams_and_errors():
    async def handler(req):
        if req.op == "echo":
            req.send({"x": req.header["x"], "end": True}, req.body)
        elif req.op == "count":
            for i in range(3):
                req.send({"i": i})
            req.send({"end": True})
        else:
            raise RemoteError("bad_op", req.op)

    async def case():
        listener, port = await _server(handler)
        ch = Channel("127.0.0.1", port, SECRET, "w")
        header, body = await ch.call("echo", x=5, body=b"bytes")
        assert header["x"] == 5 and body == b"bytes" and ch.peer == {"worker_id": "w"}
        assert [h.get("i") async for h, _ in ch.stream("count")] == [0, 1, 2, None]
        with pytest.raises(RemoteError) as exc:
            await ch.call("nope")
        assert exc.value.reason == "bad_op"
        ch.close()
        listener.close()

    asyncio.run(case())


def test_a_process_without_the_secret_can_neither_call_nor_pose_as_a_worker():
    async def handler(req):
        req.send({"end": True, "secret_work": True})

    async def case():
        rejected = []
        listener, port = await _server(handler, rejected=rejected)
        with pytest.raises(ChannelError) as exc:
            await Channel("127.0.0.1", port, b"guessed", "w").call("anything")
        assert exc.value.reason == "auth" and rejected == ["auth"]
        impostor, iport = await _server(handler, secret=b"impostor")
        with pytest.raises(ChannelError) as exc:
            await Channel("127.0.0.1", iport, SECRET, "w").call("anything")
        assert exc.value.reason == "auth"  # the client checks the server's proof too
        # A raw connection that skips the handshake gets nothing either.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.read(100)  # the server's nonce
        writer.write(b"\x00\x00\x00\x20\x00\x00\x00\x1c" + b'{"id":1,"op":"x","proof":"0"}')
        await writer.drain()
        assert await reader.read(100) == b""
        writer.close()
        listener.close()
        impostor.close()

    asyncio.run(case())


def test_closing_a_connection_cancels_its_requests():
    cancelled = asyncio.Event

    async def case():
        done = cancelled()

        async def handler(req):
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                done.set()
                raise

        listener, port = await _server(handler)
        ch = Channel("127.0.0.1", port, SECRET, "w")
        call = asyncio.ensure_future(ch.call("slow"))
        await asyncio.sleep(0.2)
        ch.close()
        with pytest.raises(ChannelError):
            await call
        await asyncio.wait_for(done.wait(), 5)  # the worker stopped the work of a caller that went away
        listener.close()

    asyncio.run(case())


def test_a_stream_its_caller_leaves_is_cancelled_on_the_worker():
    async def case():
        done = asyncio.Event()

        async def handler(req):
            try:
                while True:
                    req.send({"tick": 1})
                    await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                done.set()
                raise

        listener, port = await _server(handler)
        ch = Channel("127.0.0.1", port, SECRET, "w")
        stream = ch.stream("ticks")
        async for _ in stream:
            break
        await stream.aclose()
        await asyncio.wait_for(done.wait(), 5)
        ch.close()
        listener.close()

    asyncio.run(case())


def test_the_supervisors_blocking_probe():
    async def handler(req):
        req.send({"healthy": True, "end": True})

    async def case():
        listener, port = await _server(handler)
        ok = await asyncio.to_thread(probe, "127.0.0.1", port, SECRET, "w")
        bad = await asyncio.to_thread(probe, "127.0.0.1", port, b"wrong", "w")
        listener.close()
        return ok, bad

    ok, bad = asyncio.run(case())
    assert ok["healthy"] is True and bad is None
