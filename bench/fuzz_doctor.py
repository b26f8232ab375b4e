"""Mutation fuzzing of the doctor over the examples and the stack fixtures (not a test: it runs for a while).

    python bench/fuzz_doctor.py [--seconds 60] [--seed 1]

Deletes, inserts and duplicates characters and lines, then lints; any exception other than a reported config error
is a bug. It found two (integer flag values and replica counts that were not integers) that the hypothesis tests
had missed; both are fixed and have regression tests.
"""

from __future__ import annotations

import argparse
import random
import time
import traceback
from pathlib import Path

from disagg.doctor.context import LintOptions
from disagg.doctor.engine import lint_text
from disagg.doctor.registry import default_registry
from disagg.doctor.workload import parse_workload

ROOT = Path(__file__).resolve().parents[1]
CHARS = list(":[]{}-&*!|>'\"#,?\t\n %@`\\=$;") + ["--", '{"', '"}', "'", "\n  - ", " &\n"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rules = [r for r in default_registry() if not r.live]
    files = sorted((ROOT / "tests" / "fixtures" / "stacks").iterdir()) + sorted((ROOT / "examples").glob("*.yaml"))
    options = LintOptions(gpus=4, workload=parse_workload("isl=300"))
    rng = random.Random(args.seed)
    t0, cases, crashes = time.monotonic(), 0, 0
    while time.monotonic() - t0 < args.seconds:
        f = rng.choice(files)
        text = f.read_text()
        for _ in range(rng.randint(1, 8)):
            pos, k = rng.randrange(len(text) + 1), rng.random()
            if k < 0.4:
                text = text[:pos] + text[pos + 1 :]
            elif k < 0.8:
                text = text[:pos] + rng.choice(CHARS) + text[pos:]
            else:
                lines = text.splitlines(True)
                i = rng.randrange(len(lines))
                text = "".join(lines[: i + 1] + lines[i:])
        cases += 1
        try:
            lint_text("fuzz" + f.suffix, text, rules, options)
        except Exception:  # noqa: BLE001 - every escaping exception is what we are looking for
            crashes += 1
            if crashes <= 3:
                traceback.print_exc(limit=5)
    print(f"{cases} mutated inputs in {args.seconds:.0f} s, {crashes} crashes")


if __name__ == "__main__":
    main()
