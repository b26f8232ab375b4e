"""bench/corpus2 to corpus7 (the second to seventh held-out corpora) are what bench/bench_corpus.py scores with
their manifests: each manifest must name each upstream file once, pinned to a commit and the sha256 of its bytes, held
out from every repository the rules were written against or already measured on (shared/field and every earlier
corpus), with no file that is a byte copy of one of theirs, spread over enough repositories that no one repository's
style dominates; its variants and verdicts must point at files it holds. No network: only the repository's own files
are read. Corpus 2 predates the stricter checks (one repository holds 39 of its files, two pairs of files are byte
copies, 11 of its files are byte copies of shared/field files): it is held to the rest.

Corpus 7 is held out file by file, not repository by repository (`repos_may_repeat`): by corpus 6 the stored index had
almost no public P/D repository left that no earlier measure had drawn from, so corpus 7 may take unseen files from
repositories earlier corpora drew from. The check becomes: no repository of shared/field, no (repository, path) pair of
an earlier manifest at any commit, no byte copy, and every row's note begins with `seen-repo;` or `new-repo;` as the
earlier manifests say, so that figures can be split by how well held out a file is (a file of a seen repository is a
weaker hold-out: rules may have been written with its siblings in view)."""

from __future__ import annotations

import collections
import csv
import hashlib
import re
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
FIELDS = ["file", "split", "repo", "path", "commit", "sha256", "format", "pd", "note"]
FIELD = Path("/work/shared/field")


class Corpus(NamedTuple):
    name: str  # folder under bench/
    earlier: tuple[str, ...]  # the corpora it must be held out from (besides shared/field)
    min_pd: int  # files holding a prefill or decode worker
    min_variants: int
    strict: bool = True  # sha256 unique, file names from repo and path, <= 15 files a repository, no byte copies
    repos_may_repeat: bool = False  # held out by (repo, path) instead of by repository; notes say seen-repo/new-repo


CORPORA = [
    Corpus("corpus2", ("corpus",), 55, 45, strict=False),
    Corpus("corpus3", ("corpus", "corpus2"), 55, 40),
    Corpus("corpus4", ("corpus", "corpus2", "corpus3"), 55, 40),
    Corpus("corpus5", ("corpus", "corpus2", "corpus3", "corpus4"), 60, 50),
    Corpus("corpus6", ("corpus", "corpus2", "corpus3", "corpus4", "corpus5"), 45, 30),
    Corpus("corpus7", ("corpus", "corpus2", "corpus3", "corpus4", "corpus5", "corpus6"), 45, 40, repos_may_repeat=True),
    Corpus("corpus8", ("corpus", "corpus2", "corpus3", "corpus4", "corpus5", "corpus6", "corpus7"), 45, 35, repos_may_repeat=True),
    Corpus("corpus9", ("corpus", "corpus2", "corpus3", "corpus4", "corpus5", "corpus6", "corpus7", "corpus8"), 24, 35, repos_may_repeat=True),
    Corpus("corpus10", ("corpus", "corpus2", "corpus3", "corpus4", "corpus5", "corpus6", "corpus7", "corpus8", "corpus9"), 33, 34, repos_may_repeat=True),
    Corpus("corpus11", ("corpus", "corpus2", "corpus3", "corpus4", "corpus5", "corpus6", "corpus7", "corpus8", "corpus9", "corpus10"), 25, 32, repos_may_repeat=True),
    Corpus("corpus12", ("corpus", "corpus2", "corpus3", "corpus4", "corpus5", "corpus6", "corpus7", "corpus8", "corpus9", "corpus10", "corpus11"), 20, 20, repos_may_repeat=True),
]


def rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.fixture(params=CORPORA, ids=[c.name for c in CORPORA])
def corpus(request) -> tuple[Corpus, list[dict]]:
    c = request.param
    return c, rows(ROOT / "bench" / c.name / "MANIFEST.tsv")


STRICT = [c for c in CORPORA if c.strict]


@pytest.fixture(params=STRICT, ids=[c.name for c in STRICT])
def strict_corpus(request) -> tuple[Corpus, list[dict]]:
    c = request.param
    return c, rows(ROOT / "bench" / c.name / "MANIFEST.tsv")


def test_manifest_columns_and_pins(corpus):
    c, manifest = corpus
    with open(ROOT / "bench" / c.name / "MANIFEST.tsv", encoding="utf-8") as handle:
        assert handle.readline().rstrip("\n").split("\t") == FIELDS
    assert len(manifest) >= 60
    names = [r["file"] for r in manifest]
    assert len(names) == len(set(names))
    assert len({(r["repo"], r["path"]) for r in manifest}) == len(manifest)
    assert not c.strict or len({r["sha256"] for r in manifest}) == len(manifest)
    for r in manifest:
        assert r["split"] == "heldout", r["file"]
        assert re.fullmatch(r"[0-9a-f]{40}", r["commit"]), r["file"]
        assert re.fullmatch(r"[0-9a-f]{64}", r["sha256"]), r["file"]
        assert re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", r["repo"]), r["file"]
        assert r["pd"] in ("yes", "no"), r["file"]
        assert "/" not in r["file"] and not r["path"].startswith("/"), r["file"]
        assert not c.strict or r["file"] == r["repo"].replace("/", "_") + "__" + r["path"].replace("/", "__"), r["file"]
    assert sum(r["pd"] == "yes" for r in manifest) >= c.min_pd


def test_many_repositories_none_dominates(strict_corpus):
    _, manifest = strict_corpus
    per_repo = collections.Counter(r["repo"] for r in manifest)
    assert len(per_repo) >= 10
    assert max(per_repo.values()) <= 15, per_repo.most_common(1)


def test_repos_held_out_from_field_and_earlier_corpora(corpus):
    c, manifest = corpus
    seen, pairs = set(), set()
    for earlier in c.earlier:
        earlier_rows = rows(ROOT / "bench" / earlier / "MANIFEST.tsv")
        seen |= {r["repo"].lower() for r in earlier_rows}
        pairs |= {(r["repo"].lower(), r["path"]) for r in earlier_rows}
    field = set()
    if (FIELD / "SOURCES.tsv").is_file():
        field = {r["repo"].lower() for r in rows(FIELD / "SOURCES.tsv")}
    if not c.repos_may_repeat:
        overlap = sorted({r["repo"] for r in manifest if r["repo"].lower() in seen | field})
        assert overlap == []
        return
    assert sorted({r["repo"] for r in manifest if r["repo"].lower() in field}) == []
    assert sorted(r["file"] for r in manifest if (r["repo"].lower(), r["path"]) in pairs) == []
    for r in manifest:
        expected = "seen-repo;" if r["repo"].lower() in seen else "new-repo;"
        assert r["note"].startswith(expected), r["file"]


def test_no_byte_copy_of_an_earlier_corpus_file(strict_corpus):
    c, manifest = strict_corpus
    earlier = set()
    for name in c.earlier:
        earlier |= {r["sha256"] for r in rows(ROOT / "bench" / name / "MANIFEST.tsv")}
    if FIELD.is_dir():
        earlier |= {hashlib.sha256(f.read_bytes()).hexdigest() for f in FIELD.iterdir() if f.is_file()}
    copies = sorted(r["file"] for r in manifest if r["sha256"] in earlier)
    assert copies == []


def test_variants_and_verdicts_name_corpus_files(corpus):
    c, manifest = corpus
    names = {r["file"] for r in manifest}
    variants = yaml.safe_load((ROOT / "bench" / c.name / "variants.yaml").read_text(encoding="utf-8"))
    assert len({v["id"] for v in variants}) == len(variants) >= c.min_variants
    for v in variants:
        assert v["file"] in names, v["id"]
        assert v["source"] and v["expect"] and v["why"], v["id"]
        assert v.get("delete") is True or isinstance(v.get("replace"), str), v["id"]
    judged = ROOT / "bench" / c.name / "judgement.yaml"
    for j in (yaml.safe_load(judged.read_text(encoding="utf-8")) if judged.is_file() else None) or []:
        assert j["file"] in names
        assert j["verdict"] in ("true", "false", "unsettled")
        assert j["source"] and j["reason"]
