"""Run the doctor over ../shared/field/ (real public configs) and score it against the team's judgement
(judgement.yaml): precision of warning/error findings, recall of the known problems, and how many files that hold
prefill or decode workers had both sides linked. Used by test_field.py and bench/bench_field.py."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from disagg.doctor.context import LintOptions
from disagg.doctor.engine import lint_paths
from disagg.doctor.registry import default_registry

HERE = Path(__file__).resolve().parent
FIELD = HERE.parents[2] / "shared" / "field"
JUDGEMENT = HERE / "judgement.yaml"


def judgement() -> dict:
    return yaml.safe_load(JUDGEMENT.read_text())


def run(field: Path = FIELD):
    rules = [r for r in default_registry() if not r.live]
    return lint_paths([str(field)], rules, LintOptions())


def score(results, judged: dict | None = None) -> dict:
    judged = judged or judgement()
    want = {(j["file"], j["code"], j["line"]) for j in judged["findings"]}
    got = {(os.path.basename(f.path), f.code, f.line) for r in results for f in r.findings if f.severity.label in ("warning", "error")}
    true = got & want
    known = {(k["file"], k["code"]) for k in judged["known_problems"]}
    found_known = {(f, c) for f, c, _ in got} & known
    with_workers = [r for r in results if r.deployment is not None and any(w.role in ("prefill", "decode") for w in r.deployment.workers)]
    linked = [r for r in with_workers if r.pairs]
    return {
        "files": len(results),
        "unreadable": [r.path for r in results if r.error],
        "skipped": [(r.path, r.skipped) for r in results if r.skipped],
        "findings": len(got),
        "true": len(true),
        "unjudged": sorted(got - want),
        "missing": sorted(want - got),
        "precision": len(true) / len(got) if got else 1.0,
        "recall_known": len(found_known) / len(known) if known else 1.0,
        "files_with_workers": len(with_workers),
        "files_linked": len(linked),
        "unlinked": sorted(os.path.basename(r.path) for r in with_workers if not r.pairs),
        "coverage": len(linked) / len(with_workers) if with_workers else 1.0,
        "pairs": sum(1 for r in results for p in r.pairs if p.prefill.path == r.path),
    }
