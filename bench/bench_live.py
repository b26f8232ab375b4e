"""The seed scenario end to end: how long until `disagg doctor --live` names DG501 and its cause (not a test).

    python bench/bench_live.py [--runs 5]

Starts `disagg serve examples/seed-broken.yaml`, applies load (ISL 200, 3 concurrent clients), then starts the live
doctor at a 1 s interval with `--until-finding` and measures the wall time from its start to its exit, and the
`first_seen_s` it reports for DG501.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    serve = subprocess.Popen([sys.executable, "-m", "disagg", "serve", str(ROOT / "examples" / "seed-broken.yaml"), "--port", "0"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = serve.stdout.readline().strip()
    load = subprocess.Popen([sys.executable, "-m", "disagg", "load", url, "--isl", "200", "--requests", "100000", "--concurrency", "3"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    walls, seen, causes = [], [], set()
    try:
        time.sleep(2)
        for _ in range(args.runs):
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "disagg", "doctor", str(ROOT / "examples" / "seed-broken.yaml"), "--live", url, "--interval", "1",
                                "--until-finding", "--duration", "30", "--output-format", "json"], capture_output=True, text=True, timeout=60)
            walls.append(time.perf_counter() - t0)
            f = next(f for f in json.loads(r.stdout)["findings"] if f["code"] == "DG501" and "first_seen_s" in f)
            seen.append(f["first_seen_s"])
            causes.add(f["cause"])
    finally:
        load.send_signal(signal.SIGTERM)
        serve.send_signal(signal.SIGTERM)
        load.wait(10)
        serve.wait(15)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print("| runs | cause named | DG501 first seen (after the first scrape) | doctor start to exit, median (max) |")
    print("|---|---|---|---|")
    print(f"| {args.runs} | {', '.join(sorted(causes))} | {statistics.median(seen):.1f} s | {statistics.median(walls):.2f} s ({max(walls):.2f} s) |")


if __name__ == "__main__":
    main()
