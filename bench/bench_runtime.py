"""Runtime overheads, measured against named peers in the same run (not a test: this machine is shared and noisy).

    python bench/bench_runtime.py [--requests 400] [--seconds 5] [--concurrency 32]

1. Frontend added latency: the same request through `disagg serve`'s frontend and straight to the decode worker's
   `/generate`, mock engine at zero cost, one at a time; added = p50(frontend) - p50(direct).
2. Requests/s through the frontend with N concurrent clients for S seconds (zero-cost mock engine).
3. NIXL READ between two processes vs a plain memcpy (numpy.copyto) of the same size, in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
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


def start(config: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "disagg", "serve", str(config), "--port", "0", *extra], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        sys.exit("disagg serve did not start")
    return proc, url


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


async def latency(url: str, decode_url: str, n: int) -> tuple[list[float], list[float]]:
    prompt = "measure the frontend, not the engine"
    body_front = {"prompt": prompt, "max_tokens": 1}
    body_direct = {"tokens": list(prompt.encode()), "max_tokens": 1, "kv": None}
    front, direct = [], []
    async with aiohttp.ClientSession() as s:
        for i in range(n + 20):  # interleaved, so both see the same machine noise; 20 warm-up rounds
            t0 = time.perf_counter()
            async with s.post(url + "/v1/completions", json=body_front) as r:
                await r.read()
            t1 = time.perf_counter()
            async with s.post(decode_url + "/generate", json=body_direct) as r:
                await r.read()
            t2 = time.perf_counter()
            if i >= 20:
                front.append(t1 - t0)
                direct.append(t2 - t1)
    return front, direct


async def throughput(url: str, seconds: float, concurrency: int) -> float:
    done = 0
    stop = time.perf_counter() + seconds

    async def client(s: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < stop:
            async with s.post(url + "/v1/completions", json={"prompt": "throughput", "max_tokens": 1}) as r:
                await r.read()
                if r.status == 200:
                    done += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(s) for _ in range(concurrency)))
        return done / (time.perf_counter() - t0)


def _nixl_target(size: int, conn) -> None:
    from disagg.runtime.kv import Arena, NixlTransport

    arena = Arena(size)
    arena.buf[:] = np.arange(size, dtype=np.uint64).astype(np.uint8)
    t = NixlTransport("bench-target", arena)
    conn.send((t.metadata(), arena.addr))
    while not conn.poll(0.0005):  # progress the agent (no progress thread) until the reader is done
        t.poll_notifications()


def nixl_vs_memcpy(sizes_mib: list[int], repeats: int = 20) -> list[tuple[int, float, float]]:
    from disagg.runtime.kv import Arena, NixlTransport

    biggest = max(sizes_mib) * 2**20
    parent, child = mp.Pipe()
    ctx = mp.get_context("spawn")
    proc = ctx.Process(target=_nixl_target, args=(biggest, child))
    proc.start()
    meta, remote_addr = parent.recv()
    local = Arena(biggest)
    reader = NixlTransport("bench-reader", local)
    name = reader.add_remote(meta)
    src = np.arange(biggest, dtype=np.uint64).astype(np.uint8)
    dst = np.zeros(biggest, dtype=np.uint8)  # touched, like the registered arena
    rows = []
    for mib in sizes_mib:
        n = mib * 2**20
        reader.read(name, remote_addr, n, 0)  # warm-up: connection set-up on the first read
        nixl_ts, copy_ts = [], []
        for _ in range(repeats):  # interleaved, so both see the same machine noise
            nixl_ts.append(_timed(lambda n=n: reader.read(name, remote_addr, n, 0)))
            copy_ts.append(_timed(lambda n=n: np.copyto(dst[:n], src[:n])))
        assert np.array_equal(local.buf[: 1 << 20], src[: 1 << 20])  # the bytes arrived
        rows.append((mib, n / statistics.median(nixl_ts) / 1e9, n / statistics.median(copy_ts) / 1e9))
    parent.send("done")
    proc.join(5)
    return rows


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()
    proc, url = start(ROOT / "examples" / "agg.yaml", "--mock-timing", "zero")
    try:
        with urllib.request.urlopen(url + "/workers", timeout=5) as r:
            decode_url = next(w["url"] for w in json.loads(r.read())["workers"] if w["role"] == "decode")
        front, direct = asyncio.run(latency(url, decode_url, args.requests))
        rps = asyncio.run(throughput(url, args.seconds, args.concurrency))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    rows = nixl_vs_memcpy([4, 16, 64])
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}")
    print()
    print("| frontend (zero-cost mock engine) | value |")
    print("|---|---|")
    print(f"| p50 latency through the frontend | {statistics.median(front) * 1e3:.2f} ms |")
    print(f"| p50 latency straight to the decode worker | {statistics.median(direct) * 1e3:.2f} ms |")
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
