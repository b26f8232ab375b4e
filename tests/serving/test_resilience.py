"""What an SRE relies on: a frontend crash leaves the workers serving, a dead decode worker's untouched requests move
to another one, a client that goes away stops its work, SIGTERM drains, and slow or idle clients cannot starve the
server. Real processes on loopback; every wait is bounded."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import threading
import time
import urllib.parse

import aiohttp
import pytest

from disagg.runtime.mock_engine import BlockManager, DecodeEngine, Sequence, Timing
from disagg.runtime.mock_kv import KVLayout
from disagg.runtime.plan import ModelShape

from .conftest import EXAMPLES, complete, complete_many, prompt, start_server, variant, wait_for

pytestmark = pytest.mark.slow


def test_cancelling_sequences_mid_step_never_stops_the_engine_loop():
    """The race that killed the loop: a sequence cancelled while the loop awaits a step holding it."""

    async def case():
        layout = KVLayout(ModelShape(), b"k")
        engine = DecodeEngine(Timing(decode_step=0.002), BlockManager(1000, 16, False, layout))
        engine.start()

        async def run_then_cancel(seq, after):  # the worker's path: tokens handed out by the loop, the caller cancelled
            got = []
            task = asyncio.ensure_future(engine.run(seq, got.append))
            while len(got) < after:
                await asyncio.sleep(0)
            task.cancel()  # the client went away mid-stream
            with pytest.raises(asyncio.CancelledError):
                await task
            return len(got)

        await asyncio.gather(*(run_then_cancel(Sequence(str(i), list(range(50)), 200, i, 0), 1 + i % 5) for i in range(40)))
        await asyncio.gather(*(run_then_cancel(Sequence(f"r{i}", list(range(30)), 500, i, 0), 1 + i % 4) for i in range(40)))
        ok, why = engine.healthy()
        assert ok, why
        got = []
        await engine.run(Sequence("after", list(range(10)), 5, 1, 0), got.append)
        assert len(got) == 5  # still serving
        await asyncio.sleep(0.05)
        assert engine.running == [] and engine.blocks.used == 0 and engine.restarts == 0

    asyncio.run(case())


def test_a_frontend_killed_under_load_leaves_the_workers_serving(tmp_path):
    s = start_server(EXAMPLES / "seed-fixed.yaml", tmp_path)
    try:
        workers = {w["id"]: w["pid"] for w in s.workers()}
        front = int(re.search(r"pid (\d+)", (tmp_path / "serve.err").read_text().split("ready frontend")[1]).group(1))
        stop = threading.Event()

        def load():
            while not stop.is_set():
                try:
                    complete(s, {"prompt": prompt(200), "max_tokens": 50, "stream": False}, timeout=5)
                except Exception:  # noqa: BLE001 - the frontend is being killed under it
                    pass

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        os.kill(front, signal.SIGKILL)
        killed = time.monotonic()
        def back() -> bool:  # a request sent while the frontend restarts waits in the backlog, then is held until its first pass
            try:
                return complete(s, {"prompt": prompt(200, "back"), "max_tokens": 2}, timeout=5)[0] == 200
            except asyncio.TimeoutError:
                return False

        wait_for(back, 10, "the frontend serves again")
        assert time.monotonic() - killed < 5.0 + 1.0  # restart back-off 0.1 s + start
        stop.set()
        for t in threads:
            t.join(10)
        after = {w["id"]: (w["pid"], w["up"]) for w in s.workers()}
        assert after == {wid: (pid, True) for wid, pid in workers.items()}  # no worker died with it
        code, r = complete(s, {"prompt": prompt(200, "remote"), "max_tokens": 5})
        assert code == 200 and r["disagg"]["route"] == "remote"
    finally:
        s.stop()


def test_requests_on_a_dead_decode_worker_move_to_another_when_nothing_was_sent(serve, tmp_path):
    cfg = variant(tmp_path, "two.yaml", **{"VllmWorker.ServiceArgs": {"workers": 2}})
    s = serve(cfg, "--mock-decode-ms-per-step", "40")  # 60 tokens: 2.4 s per request
    victim = next(w for w in s.workers() if w["role"] == "decode")
    threading.Timer(0.8, os.kill, (victim["pid"], signal.SIGKILL)).start()
    results = complete_many(s, [{"prompt": prompt(200, str(i)), "max_tokens": 60} for i in range(8)], timeout=60)
    assert [code for code, _ in results] == [200] * 8, results
    assert s.metric("disagg_requests_migrated_total") >= 1


def test_a_client_that_goes_away_stops_its_work_on_every_worker(serve):
    s = serve(EXAMPLES / "seed-fixed.yaml")

    async def abandon(n):
        async with aiohttp.ClientSession() as session:
            async def one(i):
                async with session.post(s.url + "/v1/completions", json={"prompt": prompt(200, f"gone{i}"), "max_tokens": 3000, "stream": True}) as r:
                    await r.content.readline()  # the first event arrived: the stream runs
            await asyncio.gather(*(one(i) for i in range(n)))

    before = s.metric("disagg_requests_aborted_total")
    asyncio.run(abandon(20))  # each connection closes after its first event
    wait_for(lambda: s.metric("disagg_requests_aborted_total") - before == 20, 10, "20 aborts counted")
    wait_for(lambda: s.metric("disagg_engine_requests_running", worker_id="decode-0") == 0, 5, "the decode engine dropped them")
    assert s.metric("disagg_requests_in_flight") == 0


def test_sigterm_drains_streams_then_ends_the_rest_with_an_error_event(tmp_path):
    s = start_server(EXAMPLES / "seed-fixed.yaml", tmp_path, "--drain-seconds", "1.5")
    results = {}

    async def stream(name, tokens):
        async with aiohttp.ClientSession() as session:
            async with session.post(s.url + "/v1/completions", json={"prompt": prompt(200, name), "max_tokens": tokens, "stream": True}) as r:
                results[name] = (await r.read()).decode()

    def run():
        async def both():
            await asyncio.gather(stream("short", 50), stream("long", 2000))  # 0.2 s and ~8 s of decoding
        asyncio.run(both())

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.5)
    s.proc.send_signal(signal.SIGTERM)
    t.join(20)
    assert s.proc.wait(20) == 0
    short = [line[6:] for line in results["short"].splitlines() if line.startswith("data: ")]
    assert short[-1] == "[DONE]" and json.loads(short[-2])["choices"][0]["finish_reason"] == "length"  # finished within the drain
    long = [line[6:] for line in results["long"].splitlines() if line.startswith("data: ")]
    assert long[-1] == "[DONE]" and json.loads(long[-2])["error"]["message"] == "the server is shutting down"


def test_slow_and_idle_clients_cannot_starve_the_server(serve):
    s = serve(EXAMPLES / "seed-fixed.yaml", "--max-connections", "40")
    host, port = urllib.parse.urlparse(s.url).hostname, urllib.parse.urlparse(s.url).port
    idle = [socket.create_connection((host, port), timeout=5) for _ in range(60)]  # never send a byte
    slow_body = socket.create_connection((host, port), timeout=20)
    slow_body.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"prompt\"")
    try:
        code, r = complete(s, {"prompt": prompt(200), "max_tokens": 2}, timeout=5)  # idle ones beyond the cap were closed first
        assert code == 200, r
        answer = slow_body.recv(4096).decode()  # within the 10 s body timeout
        assert answer.startswith("HTTP/1.1 408") and "did not arrive within 10 s" in answer
        time.sleep(1.5)
        closed = 0
        for c in idle:  # the header timeout (10 s) has passed for all of them by now
            c.settimeout(0.5)
            try:
                closed += c.recv(1) == b""
            except (TimeoutError, ConnectionResetError):
                closed += 1
        assert closed == len(idle)
    finally:
        for c in idle + [slow_body]:
            c.close()


def test_the_open_file_limit_is_raised_at_start(serve):
    s = serve(EXAMPLES / "seed-fixed.yaml")
    for w in s.workers():
        with open(f"/proc/{w['pid']}/limits") as handle:
            soft = int(next(line for line in handle if line.startswith("Max open files")).split()[3])
        assert soft >= min(65535, int(os.popen("ulimit -Hn").read().strip() or 65535))
