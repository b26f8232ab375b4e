"""CPU cost of `disagg top` at 1 Hz with 64 workers, from a synthetic source (not a test: machines here are noisy).

    python bench/bench_dashboard.py [--workers 64] [--seconds 30]

Runs the real Textual app headless (no terminal I/O, so the number covers polling, diagnosis and layout, not the
terminal's own rendering), and reports process CPU time over wall time after a 5 s warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time

from disagg.doctor.dashboard.app import make_app
from disagg.doctor.live.utilisation import Reading
from disagg.doctor.live.window import Snapshot, WorkerView, freeze


def synthetic(workers: int):
    t0 = time.monotonic()
    n = 0

    def tick() -> Snapshot:
        nonlocal n
        n += 1
        views = tuple(WorkerView(f"{'prefill' if i % 4 == 0 else 'decode'}-{i}", "prefill" if i % 4 == 0 else "decode", 1000 + i, True, f"gpu:{i % 8}",
                                 f"http://w/{i}") for i in range(workers))
        signals = {
            "requests": [({"route": "remote", "reason": "remote"}, 30.0 * n), ({"route": "local", "reason": "below_threshold"}, 10.0 * n),
                         ({"route": "local", "reason": "queue_full"}, 2.0 * n)],
            "worker_requests": [({"worker_id": v.worker_id, "role": v.role}, 1.0 * n) for v in views],
            "queue_size": [({}, float(n % 5))],
            "kv_bytes": [({}, 1.6e6 * 30 * n)],
            "isl_bucket": [({"le": str(b)}, float(n * 40 if b >= 256 else 0)) for b in (128.0, 256.0, 512.0, float("inf"))],
        }
        wsig = {v.worker_id: freeze({"busy_seconds": [({}, 0.5 * n)], "prompt_tokens_computed": [({}, 2000.0 * n)]}) for v in views}
        util = {v.worker_id: Reading(50.0 + (n % 10), "nvml", 2**34, "synthetic") for v in views}
        return Snapshot(time.monotonic() - t0, time.time(), "http://synthetic", None, freeze(signals), wsig, views, util, ("synthetic source",), ("disagg",))

    return tick


async def measure(workers: int, seconds: float) -> tuple[float, int]:
    app = make_app(synthetic(workers), "http://synthetic", interval=1.0)
    result = {}

    async def sample():
        await asyncio.sleep(5)  # warm-up: imports, first layout
        c0, w0, t0 = time.process_time(), time.monotonic(), app.ticks
        await asyncio.sleep(seconds)
        result["cpu"] = (time.process_time() - c0) / (time.monotonic() - w0)
        result["ticks"] = app.ticks - t0
        app.exit()

    async with app.run_test(size=(200, 80), headless=True):
        await sample()
    return result["cpu"], result["ticks"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=30)
    args = ap.parse_args()
    cpu, ticks = asyncio.run(measure(args.workers, args.seconds))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print("| workers | interval | snapshots drawn | CPU (share of one core) |")
    print("|---|---|---|---|")
    print(f"| {args.workers} | 1 s | {ticks} in {args.seconds:.0f} s | {cpu * 100:.1f}% |")


if __name__ == "__main__":
    main()
