"""Precision, recall and coverage of the doctor on real public configs (../shared/field/), against the team's
judgement in tests/field/judgement.yaml (not a test: run it by hand, paste its table into the README).

    python bench/bench_field.py

Precision: warning/error findings judged true (with an upstream source) over all warning/error findings.
Recall: the corpus's known real problems found. Coverage: files holding prefill or decode workers in which both
sides were linked (in the file, or with another file of the folder).
"""

from __future__ import annotations

import collections
import csv
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from field.corpus import FIELD, run, score  # noqa: E402


def main() -> int:
    if not FIELD.is_dir():
        sys.exit(f"{FIELD} not found: the real configs sit beside this checkout in CI and sessions")
    results = run()
    s = score(results)
    with open(FIELD / "SOURCES.tsv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    scripts = [r for r in rows if r["file"].endswith(".sh")]
    by_code = collections.Counter(f.code for r in results for f in r.findings if f.severity.label in ("warning", "error"))
    infos = collections.Counter(f.code for r in results for f in r.findings if f.severity.label == "info")
    print(f"corpus: {len(rows)} public configs listed in SOURCES.tsv; {s['files']} files here ({len(scripts)} scripts stay upstream)")
    print()
    print("| measure | value |")
    print("|---|---|")
    print(f"| warning/error findings | {s['findings']} ({', '.join(f'{c} {n}' for c, n in sorted(by_code.items()))}) |")
    print(f"| judged true, with a source | {s['true']} |")
    print(f"| **precision** | **{s['precision']:.0%}** |")
    print(f"| known real problems found (recall) | {s['recall_known']:.0%} |")
    print(f"| files with prefill/decode workers, both sides linked (coverage) | {s['files_linked']}/{s['files_with_workers']} ({s['coverage']:.0%}) |")
    print(f"| prefill/decode pairs checked | {s['pairs']} |")
    print(f"| notes (info) | {sum(infos.values())} ({', '.join(f'{c} {n}' for c, n in sorted(infos.items()))}) |")
    print(f"| unreadable files / tracebacks | {len(s['unreadable'])} / 0 |")
    for what in ("unjudged", "missing", "unlinked"):
        if s[what]:
            print(f"\n{what}: {s[what]}")
    return 0 if not s["unjudged"] and not s["missing"] else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
