"""`disagg top` under a fast poll for minutes: the dashboard headless at 80x24 over a synthetic deployment (16
workers, counters moving, one worker going down and up), polled every 0.01 s; fails on any exception in the app.

    python bench/soak_top.py [--minutes 10] [--interval 0.01] [--size 80x24]

Issue 21 found `RuntimeError: deque mutated during iteration` in the first run at interval 0.01 (the UI thread
iterated the window while the polling thread appended to it); the UI now draws immutable views only.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from disagg.doctor.dashboard.app import make_app
from disagg.doctor.live.utilisation import Reading
from disagg.doctor.live.window import Snapshot, WorkerView, freeze


def synthetic(workers: int):
    n = {"tick": 0}

    def tick() -> Snapshot:
        n["tick"] += 1
        k = n["tick"]
        views = tuple(WorkerView(f"{'prefill' if i % 2 else 'decode'}-{i}", "prefill" if i % 2 else "decode", 1000 + i, not (i == 3 and (k // 500) % 2),
                                 "cpu", f"http://w/{i}", last_seen=time.time() - 2 if i == 3 else None) for i in range(workers))
        signals = {"requests": [({"route": "remote", "reason": "remote"}, float(k * 3)), ({"route": "local", "reason": "below_threshold"}, float(k))],
                   "worker_requests": [({"worker_id": v.worker_id}, float(k)) for v in views], "queue_size": [({}, float(k % 7))],
                   "kv_bytes": [({}, float(k * 2**20))]}
        return Snapshot(k * 0.01, time.time(), "http://synthetic", None, freeze(signals), {}, views,
                        {v.worker_id: Reading(float(k % 100), "psutil") for v in views}, (), ("disagg",))

    return tick


async def soak(minutes: float, interval: float, size: tuple[int, int]) -> int:
    app = make_app(synthetic(16), "http://synthetic", interval=interval)
    deadline = time.monotonic() + minutes * 60
    async with app.run_test(size=size, headless=True) as pilot:
        while time.monotonic() < deadline:
            await pilot.pause(1.0)
            if app.return_code:
                break
    if app.return_code:
        raise SystemExit(f"the dashboard stopped with code {app.return_code} after {app.frames} snapshots")
    return app.frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--interval", type=float, default=0.01)
    ap.add_argument("--size", default="80x24")
    args = ap.parse_args()
    w, h = (int(x) for x in args.size.split("x"))
    start = time.monotonic()
    frames = asyncio.run(soak(args.minutes, args.interval, (w, h)))
    print(f"{frames} snapshots in {time.monotonic() - start:.0f} s at interval {args.interval} ({args.size}), no exception")


if __name__ == "__main__":
    main()
