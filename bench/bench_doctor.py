"""Doctor speed against yamllint, in the same run on the same files (not a test: machines here are noisy).

    python bench/bench_doctor.py [--runs 15] [--files 1000]

Measures (1) cold start: one process per run on one config, median wall time, for `disagg doctor` and `yamllint`;
(2) 1,000 configs in one call. Prints a Markdown table for the README. Needs `pip install '.[bench]'`.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _bin(name: str) -> str:
    found = shutil.which(name, path=os.path.dirname(sys.executable)) or shutil.which(name)
    if not found:
        sys.exit(f"{name} not found: pip install '.[bench]'")
    return found


def timed(cmd: list[str], runs: int) -> tuple[float, float]:
    """(median, min) wall seconds over `runs` runs, after one warm-up run (page cache, .pyc)."""
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples), min(samples)


def corpus(folder: Path, n: int) -> list[str]:
    sources = sorted(EXAMPLES.glob("*.yaml"))
    paths = []
    for i in range(n):
        src = sources[i % len(sources)]
        dst = folder / f"{i:04d}-{src.name}"
        dst.write_text(src.read_text())
        paths.append(str(dst))
    return paths


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--files", type=int, default=1000)
    args = ap.parse_args()
    disagg, yamllint = _bin("disagg"), _bin("yamllint")
    rows = []
    for name in ("seed-broken.yaml", "disagg-router.yaml"):
        f = str(EXAMPLES / name)
        d = timed([disagg, "doctor", f], args.runs)
        y = timed([yamllint, f], args.runs)
        rows.append((f"cold, one file ({name})", d, y))
    with tempfile.TemporaryDirectory() as tmp:
        paths = corpus(Path(tmp), args.files)
        runs = max(3, args.runs // 5)
        d = timed([disagg, "doctor", "--exit-zero", tmp], runs)
        y = timed([yamllint, *paths], runs)
        rows.append((f"{args.files} configs, one call", d, y))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}")
    print()
    print("| case | disagg doctor (median) | yamllint (median) | ratio disagg/yamllint |")
    print("|---|---|---|---|")
    for label, (dm, _), (ym, _) in rows:
        print(f"| {label} | {dm * 1000:.0f} ms | {ym * 1000:.0f} ms | {dm / ym:.2f} |")


if __name__ == "__main__":
    main()
