"""Doctor speed against yamllint, in the same run on the same files (not a test: machines here are noisy).

    python bench/bench_doctor.py [--runs 15] [--files 1000] [--venv .bench/venv]
    python bench/bench_doctor.py --rss 1000,5000 [--runs 3]

Measures (1) cold start: one process per run on one config, median wall time, for `disagg doctor` and `yamllint`;
(2) 1,000 configs in one call; (3) the real configs of ../shared/field. With --rss: peak RSS of one call on N mixed configs in each output
format and of yamllint on the same files (median of --runs; the largest process of the run: the doctor's main
process or one of its workers). Runs the package as users get it: a
virtual environment under .bench/ with `pip install . yamllint` (made on first use; --rebuild renews it), never the
source tree (an editable install adds setuptools' import hook, and the source tree may not hold bytecode).
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


VENV = ROOT / ".bench" / "venv"


def installed(venv: Path, rebuild: bool) -> Path:
    """A virtual environment holding this checkout installed as users install it, and yamllint."""
    if rebuild and venv.exists():
        shutil.rmtree(venv)
    if not (venv / "bin" / "disagg").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(ROOT), "yamllint"], check=True)
    else:  # refresh the package itself, keep the dependencies
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-deps", "--force-reinstall", str(ROOT)], check=True)
    return venv / "bin"


def _bin(name: str) -> str:
    return str(BIN / name)


BIN = VENV / "bin"


def timed(cmd: list[str], runs: int) -> tuple[float, float]:
    """(median, min) wall seconds over `runs` runs, after one warm-up run (page cache, .pyc)."""
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples), min(samples)


STACKS = ROOT / "tests" / "fixtures" / "stacks"


def corpus(folder: Path, n: int) -> list[str]:
    """A mixed corpus: Dynamo v0 configs, Kubernetes manifests, a DynamoGraphDeployment, compose, llm-d (all YAML, so
    that yamllint reads the same files)."""
    sources = sorted(EXAMPLES.glob("*.yaml")) + sorted(STACKS.glob("*.yaml"))
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
    ap.add_argument("--venv", type=Path, default=VENV)
    ap.add_argument("--rebuild", action="store_true", help="make the benchmark's virtual environment anew")
    ap.add_argument("--rss", metavar="N,N", help="only peak RSS on N mixed files, per output format and for yamllint")
    args = ap.parse_args()
    global BIN
    BIN = installed(args.venv, args.rebuild)
    if args.rss:
        return peak_rss([int(n) for n in args.rss.split(",")], args.runs)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # as users run it: bytecode cached after the first run
    disagg, yamllint = _bin("disagg"), _bin("yamllint")
    rows = []
    for f in (str(EXAMPLES / "seed-broken.yaml"), str(EXAMPLES / "disagg-router.yaml"), str(STACKS / "vllm-pd-deployments.yaml")):
        name = Path(f).name
        d = timed([disagg, "doctor", f], args.runs)
        y = timed([yamllint, f], args.runs)
        rows.append((f"cold, one file ({name})", d, y))
    with tempfile.TemporaryDirectory() as tmp:
        paths = corpus(Path(tmp), args.files)
        runs = max(3, args.runs // 5)
        d = timed([disagg, "doctor", "--exit-zero", tmp], runs)
        y = timed([yamllint, *paths], runs)
        rows.append((f"{args.files} configs (mixed formats), one call", d, y))
        bad = bad_inputs(Path(tmp))
    field = ROOT.parent / "shared" / "field"
    if field.is_dir():
        files = sorted(str(p) for p in field.glob("*.yaml"))
        d = timed([disagg, "doctor", "--exit-zero", str(field)], max(3, args.runs // 3))
        y = timed([yamllint, *files], max(3, args.runs // 3))
        rows.append((f"../shared/field ({len(files)} real configs), one call", d, y))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}")
    print()
    print("| case | disagg doctor (median) | yamllint (median) | ratio disagg/yamllint |")
    print("|---|---|---|---|")
    for label, (dm, _), (ym, _) in rows:
        print(f"| {label} | {dm * 1000:.0f} ms | {ym * 1000:.0f} ms | {dm / ym:.2f} |")
    print()
    print("| bad input (exit 2 expected) | exit | wall | peak RSS |")
    print("|---|---|---|---|")
    for label, code, wall, rss in bad:
        print(f"| {label} | {code} | {wall * 1000:.0f} ms | {rss:.0f} MB |")


_PROBE = "import resource,subprocess,sys;subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL);print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024)"


def rss_mib(cmd: list[str]) -> float:
    """Peak RSS of the largest process `cmd` ran (it and each worker it waited for), in MiB."""
    return float(subprocess.run([sys.executable, "-c", _PROBE, *cmd], capture_output=True, text=True, check=True).stdout)


def peak_rss(sizes: list[int], runs: int) -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, Python {platform.python_version()}")
    print()
    print("| files | " + " | ".join(f"doctor {f}" for f in FORMATS) + " | yamllint -d relaxed |")
    print("|---" * (len(FORMATS) + 2) + "|")
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            paths = corpus(Path(tmp), n)
            row = [statistics.median(rss_mib([_bin("disagg"), "doctor", "--exit-zero", "--output-format", f, tmp]) for _ in range(runs)) for f in FORMATS]
            row.append(statistics.median(rss_mib([_bin("yamllint"), "-d", "relaxed", *paths]) for _ in range(runs)))
        print(f"| {n} | " + " | ".join(f"{m:.1f} MiB" for m in row) + " |")
    print(f"\nload after: {os.getloadavg()[0]:.1f}")


FORMATS = ("text", "json", "sarif", "junit", "github")


def bad_inputs(folder: Path) -> list[tuple[str, int, float, float]]:
    """Time and measure the doctor on hostile input; the budget is 2 s and 200 MB each."""
    cases = {
        "alias bomb (9^9 nodes)": "\n".join(['a: &a ["x","x","x","x","x","x","x","x","x"]'] + [f"{c}: &{c} [{', '.join(['*' + p] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi")] + ["VllmWorker: {model: *i}"]).encode(),
        "50 MB file": b"VllmWorker:\n" + (b"  # " + b"x" * 1020 + b"\n") * 50 * 1024,
        "10,000-deep nesting": b"VllmWorker: " + b"[" * 10_000 + b"]" * 10_000 + b"\n",
        "binary": bytes(range(256)) * 1024,
    }
    out = []
    for label, data in cases.items():
        path = folder / "bad.yaml"
        path.write_bytes(data)
        probe = "import resource,subprocess,sys,time;t=time.perf_counter();p=subprocess.run(sys.argv[1:],capture_output=True);print(p.returncode,time.perf_counter()-t,resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024)"
        res = subprocess.run([sys.executable, "-c", probe, _bin("disagg"), "doctor", str(path)], capture_output=True, text=True)
        code, wall, rss = res.stdout.split()
        out.append((label, int(code), float(wall), float(rss)))
    return out




if __name__ == "__main__":
    main()
