"""bench/corpus2 (the second held-out corpus) is what bench/bench_corpus.py --manifest bench/corpus2/MANIFEST.tsv scores:
its manifest must name each upstream file once, pinned to a commit and the sha256 of its bytes, held out from the repos
the rules were written against (shared/field and corpus 1), and its variants and verdicts must point at files it holds.
No network: only the repository's own files are read."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CORPUS2 = ROOT / "bench" / "corpus2"
FIELDS = ["file", "split", "repo", "path", "commit", "sha256", "format", "pd", "note"]


def rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.fixture(scope="module")
def manifest() -> list[dict]:
    return rows(CORPUS2 / "MANIFEST.tsv")


def test_manifest_columns_and_pins(manifest):
    with open(CORPUS2 / "MANIFEST.tsv", encoding="utf-8") as handle:
        assert handle.readline().rstrip("\n").split("\t") == FIELDS
    assert len(manifest) >= 60
    names = [r["file"] for r in manifest]
    assert len(names) == len(set(names))
    assert len({(r["repo"], r["path"]) for r in manifest}) == len(manifest)
    for r in manifest:
        assert r["split"] == "heldout", r["file"]
        assert re.fullmatch(r"[0-9a-f]{40}", r["commit"]), r["file"]
        assert re.fullmatch(r"[0-9a-f]{64}", r["sha256"]), r["file"]
        assert re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", r["repo"]), r["file"]
        assert r["pd"] in ("yes", "no"), r["file"]
        assert "/" not in r["file"] and not r["path"].startswith("/"), r["file"]
    assert sum(r["pd"] == "yes" for r in manifest) >= 55


def test_repos_held_out_from_field_and_corpus1(manifest):
    seen = {r["repo"].lower() for r in rows(ROOT / "bench" / "corpus" / "MANIFEST.tsv")}
    field = Path("/work/shared/field/SOURCES.tsv")
    if field.is_file():
        seen |= {r["repo"].lower() for r in rows(field)}
    overlap = sorted({r["repo"] for r in manifest if r["repo"].lower() in seen})
    assert overlap == []


def test_variants_and_verdicts_name_corpus_files(manifest):
    names = {r["file"] for r in manifest}
    variants = yaml.safe_load((CORPUS2 / "variants.yaml").read_text(encoding="utf-8"))
    assert len({v["id"] for v in variants}) == len(variants) >= 45
    for v in variants:
        assert v["file"] in names, v["id"]
        assert v["source"] and v["expect"], v["id"]
        assert v.get("delete") is True or isinstance(v.get("replace"), str), v["id"]
    for j in yaml.safe_load((CORPUS2 / "judgement.yaml").read_text(encoding="utf-8")) or []:
        assert j["file"] in names
        assert j["verdict"] in ("true", "false", "unsettled")
        assert j["source"]
