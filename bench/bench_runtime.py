"""Runtime overheads, measured against named peers in the same run (not a test: this machine is shared and noisy).

    python bench/bench_runtime.py [--requests 400] [--seconds 5] [--concurrency 32] [--api-key KEY]

1. Frontend added latency: the same one-token request through `disagg serve`'s frontend (HTTP, OpenAI) and straight
   to the decode worker over the run's internal channel, zero-cost mock engine, one at a time, interleaved;
   added = p50(frontend) - p50(direct). The bench knows the run's secret because it sets DISAGG_RUN_SECRET.
2. Requests/s through the frontend with N concurrent clients for S seconds (zero-cost mock engine).
3. NIXL READ between two processes, as the runtime does it (a region registered for the read, polled from the
   event loop), against a memcpy (numpy.copyto) of the same size in the same run.
4. `--kv-path`: the prefill -> decode KV pull alone (runtime/prefill_kv.py's `PrefillKV` with its own progress loop in
   a child process, the decode side's steps of worker.py `_pull_kv` here), one request at a time, with a breakdown:
   make (request to the prefill side, fill, expose, answer), handle check, read posted, read complete, checksum
   verify, and when the prefill side saw the release (its notice rides the READ: NIXL delivers it on completion).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def start(config: Path, secret: str, *extra: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "DISAGG_RUN_SECRET": secret}
    proc = subprocess.Popen([sys.executable, "-m", "disagg", "serve", str(config), "--port", "0", *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        sys.exit("disagg serve did not start")
    return proc, url


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


async def latency(url: str, decode: tuple[str, int, str], secret: bytes, n: int, headers: dict) -> tuple[list[float], list[float]]:
    from disagg.runtime.channel import Channel

    prompt = "measure the frontend, not the engine"
    body_front = {"prompt": prompt, "max_tokens": 1}
    tokens = list(prompt.encode())
    channel = Channel(decode[0], decode[1], secret, decode[2])
    front, direct = [], []
    async with aiohttp.ClientSession(headers=headers) as s:
        for i in range(n + 20):  # interleaved, so both see the same machine noise; 20 warm-up rounds
            t0 = time.perf_counter()
            async with s.post(url + "/v1/completions", json=body_front) as r:
                await r.read()
            t1 = time.perf_counter()
            async for _ in channel.stream("generate", tokens=tokens, max_tokens=1, kv=None, request=f"direct-{i}"):
                pass
            t2 = time.perf_counter()
            if i >= 20:
                front.append(t1 - t0)
                direct.append(t2 - t1)
    channel.close()
    return front, direct


async def throughput(url: str, seconds: float, concurrency: int, headers: dict) -> float:
    done = 0
    stop = time.perf_counter() + seconds

    async def client(s: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < stop:
            async with s.post(url + "/v1/completions", json={"prompt": "throughput", "max_tokens": 1}) as r:
                await r.read()
                if r.status == 200:
                    done += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), headers=headers) as s:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(s) for _ in range(concurrency)))
        return done / (time.perf_counter() - t0)


def _nixl_target(size: int, conn) -> None:
    from disagg.runtime.kv import Arena, NixlTransport, StoredKV

    arena = Arena(size)
    arena.buf[:] = np.arange(size, dtype=np.uint64).astype(np.uint8)
    t = NixlTransport("bench-target", arena)
    conn.send((t.expose(StoredKV("bench", 0, size, 0.0)), arena.addr))
    while not conn.poll(0.005):  # NIXL's progress thread serves the reads; collect notices as a prefill worker does
        t.poll_notifications()


def nixl_vs_memcpy(sizes_mib: list[int], repeats: int = 20) -> list[tuple[int, float, float]]:
    from disagg.runtime.kv import Arena, NixlTransport

    biggest = max(sizes_mib) * 2**20
    parent, child = mp.Pipe()
    ctx = mp.get_context("spawn")
    proc = ctx.Process(target=_nixl_target, args=(biggest, child))
    proc.start()
    meta, remote_addr = parent.recv()
    local = Arena(biggest, scrub=False)
    reader = NixlTransport("bench-reader", local, serves_reads=False)  # as a decode worker reads
    src = np.arange(biggest, dtype=np.uint64).astype(np.uint8)
    dst = np.zeros(biggest, dtype=np.uint8)  # touched, like the registered arena
    rows = []

    async def read(n: int) -> float:
        t0 = time.perf_counter()
        await reader.read(meta, remote_addr, n, 0, timeout=10)
        return time.perf_counter() - t0

    async def run():
        for mib in sizes_mib:
            n = mib * 2**20
            await read(n)  # warm-up: connection set-up on the first read
            nixl_ts, copy_ts = [], []
            for _ in range(repeats):  # interleaved, so both see the same machine noise
                nixl_ts.append(await read(n))
                copy_ts.append(_timed(lambda n=n: np.copyto(dst[:n], src[:n])))
            assert np.array_equal(local.buf[: 1 << 20], src[: 1 << 20])  # the bytes arrived
            rows.append((mib, n / statistics.median(nixl_ts) / 1e9, n / statistics.median(copy_ts) / 1e9))

    asyncio.run(run())
    parent.send("done")
    proc.join(5)
    return rows


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


class _Counter:
    def labels(self, **_):
        return self

    def inc(self, *_):
        pass


def _prefill_side(conn, secret: bytes, shape: tuple) -> None:
    """The prefill worker's KV half: `PrefillKV.make` on request, its `progress` loop running as in a worker."""
    from types import SimpleNamespace

    from disagg.runtime.kv import Arena, NixlTransport
    from disagg.runtime.mock_kv import KVLayout
    from disagg.runtime.plan import ModelShape
    from disagg.runtime.prefill_kv import PrefillKV

    async def run():
        arena = Arena(64 << 20)
        metrics = SimpleNamespace(kv_released=_Counter(), kv_expired=_Counter())
        kv = PrefillKV("prefill-0", arena, KVLayout(ModelShape(*shape), secret), secret, metrics, NixlTransport("bench-prefill", arena), "nixl", 1)
        released: dict[str, float] = {}
        count = kv.store.on_release
        kv.store.on_release = lambda reason, e: (released.__setitem__(e.kv_id, time.perf_counter()), count(reason, e))
        progress = asyncio.create_task(kv.progress())
        done = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_message():
            msg = conn.recv()
            if msg[0] == "make":
                t0 = time.perf_counter()
                handle, meta = kv.make(msg[1], 0, msg[2])
                conn.send((handle, meta, t0, time.perf_counter()))
            else:
                conn.send((released, len(kv.store.entries), arena.used))
                done.set()

        loop.add_reader(conn.fileno(), on_message)
        await done.wait()
        progress.cancel()

    asyncio.run(run())


def kv_path(isl: int, n: int, shape: tuple) -> None:
    from disagg.runtime.kv import Arena, NixlTransport, check_handle
    from disagg.runtime.mock_kv import KVLayout
    from disagg.runtime.plan import ModelShape

    secret = secrets.token_bytes(32)
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=_prefill_side, args=(child, secret, shape))
    proc.start()
    layout = KVLayout(ModelShape(*shape), secret)
    arena = Arena(64 << 20, scrub=False)  # as worker.py's decode side
    nixl = NixlTransport("bench-decode", arena, serves_reads=False)
    rows = []

    async def one(i: int) -> dict:
        tokens = [(i * 7919 + j) % 50000 for j in range(isl)]
        request = f"kv-{i}"
        t0 = time.perf_counter()
        parent.send(("make", tokens, request))
        fut = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().add_reader(parent.fileno(), lambda: fut.done() or fut.set_result(parent.recv()))
        handle, meta, m0, m1 = await fut
        asyncio.get_running_loop().remove_reader(parent.fileno())
        t1 = time.perf_counter()  # the handle is here: the pull starts (what worker.py reports as kv seconds)
        check_handle(secret, handle, request)
        t2 = time.perf_counter()
        length = int(handle["length"])
        off = arena.allocate(length)
        await nixl.read(meta, int(handle["addr"]), length, off, 10.0, notif=b"release:" + handle["kv_id"].encode())  # as worker.py
        t4 = t5 = time.perf_counter()
        ok = layout.verify(arena.view(off, length), 0) == int(handle["checksum"])
        arena.release(off, length)
        t6 = time.perf_counter()
        assert ok, "checksum mismatch"
        return {"kv_id": handle["kv_id"], "bytes": length, "make": m1 - m0, "to_prefill": m0 - t0, "back": t1 - m1, "check": t2 - t1,
                "post": nixl.posted_at - t2, "complete": t4 - nixl.posted_at, "verify": t6 - t5,
                "pull": t6 - t1, "t_notify": t5}

    async def run():
        for i in range(n + 10):
            r = await one(i)
            if i >= 10:
                rows.append(r)
            await asyncio.sleep(0.002)  # requests apart, as with concurrency 1 and a decode in between
        await asyncio.sleep(0.05)  # the last release notice reaches the prefill side (collected every few ms)

    asyncio.run(run())
    parent.send(("stats",))
    released, left, used = parent.recv()
    proc.join(5)
    for r in rows:
        r["release_seen"] = released.get(r["kv_id"], float("nan")) - r["t_notify"]
    us = lambda xs, p: pct(xs, p) * 1e6  # noqa: E731
    print(f"KV pull, ISL {isl}, {rows[0]['bytes'] >> 10} KiB per request, {n} requests one at a time; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print("| step | p50 µs | p99 µs |")
    print("|---|---|---|")
    for key in ("to_prefill", "make", "back", "check", "post", "complete", "verify", "pull", "release_seen"):
        xs = [r[key] for r in rows]
        print(f"| {key}{' (**pull**: handle in hand to KV verified)' if key == 'pull' else ''} | {us(xs, 50):.0f} | {us(xs, 99):.0f} |")
    print(f"regions left on the prefill side: {left}, arena bytes in use: {used}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--api-key", help="run the frontend with this API key (auth on)")
    ap.add_argument("--nixl-only", action="store_true", help="only the NIXL READ against memcpy")
    ap.add_argument("--kv-path", action="store_true", help="only the prefill -> decode KV pull, with its breakdown")
    ap.add_argument("--isl", type=int, default=200)
    ap.add_argument("--kv-layers", type=int, default=8, help="model layers (KV bytes per token = layers x 1 KiB at the default shape)")
    args = ap.parse_args()
    if args.kv_path:
        kv_path(args.isl, args.requests if args.requests != 400 else 200, (args.kv_layers,))
        return
    if args.nixl_only:
        for mib, nixl_gbs, copy_gbs in nixl_vs_memcpy([4, 16, 64]):
            print(f"| {mib} MiB | {nixl_gbs:.2f} GB/s | {copy_gbs:.2f} GB/s | {nixl_gbs / copy_gbs:.2f} |")
        return
    secret = secrets.token_hex(32)
    extra = ["--mock-timing", "zero"] + (["--api-key", args.api_key] if args.api_key else [])
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    proc, url = start(ROOT / "examples" / "agg.yaml", secret, *extra)
    try:
        with urllib.request.urlopen(urllib.request.Request(url + "/workers", headers=headers), timeout=5) as r:
            wid, addr = next((w["id"], w["address"]) for w in json.loads(r.read())["workers"] if w["role"] == "decode")
        host, port = addr.rsplit(":", 1)
        front, direct = asyncio.run(latency(url, (host, int(port), wid), secret.encode(), args.requests, headers))
        rps = asyncio.run(throughput(url, args.seconds, args.concurrency, headers))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(40)
    rows = nixl_vs_memcpy([4, 16, 64])
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}")
    print()
    print(f"| frontend (zero-cost mock engine{', API key on' if args.api_key else ''}) | value |")
    print("|---|---|")
    print(f"| p50 latency through the frontend | {statistics.median(front) * 1e3:.2f} ms |")
    print(f"| p50 latency straight to the decode worker (internal channel) | {statistics.median(direct) * 1e3:.2f} ms |")
    print(f"| **p50 added by the frontend** | **{(statistics.median(front) - statistics.median(direct)) * 1e3:.2f} ms** |")
    print(f"| p99 added | {(pct(front, 99) - pct(direct, 99)) * 1e3:.2f} ms |")
    print(f"| requests/s, {args.concurrency} concurrent clients, {args.seconds:.0f} s | {rps:.0f} |")
    print()
    print("| size | NIXL READ (2 processes, UCX, DRAM), median of 20 | memcpy (numpy.copyto), median of 20 | NIXL / memcpy |")
    print("|---|---|---|---|")
    for mib, nixl_gbs, copy_gbs in rows:
        print(f"| {mib} MiB | {nixl_gbs:.2f} GB/s | {copy_gbs:.2f} GB/s | {nixl_gbs / copy_gbs:.2f} |")


if __name__ == "__main__":
    main()
