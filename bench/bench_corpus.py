"""Score the static doctor on the held-out corpus of public P/D configs (bench/corpus/MANIFEST.tsv; the files live
outside the repository, see bench/corpus/README.md) and on one-line breaks of those files (bench/corpus/variants.yaml).

    python bench/bench_corpus.py                         # heldout split, files in /work/corpus/files
    python bench/bench_corpus.py --split dev|heldout|all --corpus DIR --json

Figures:
- unread P/D files: files that hold a prefill or decode worker (manifest pd=yes) that the doctor could not read
  (error) or set aside (skipped); and, apart, files read with no prefill/decode worker recognised.
- warning/error findings, judged against bench/corpus/judgement.yaml (a list of {file, code, line, verdict:
  true|false|unsettled, source, reason}): precision = true / (true + false); unsettled and unjudged are listed apart.
- recall on variants: each variant is applied to a copy of its file, and the doctor runs on it together with the other
  files of the same upstream folder; it is caught when an expected code (any warning/error for "any-warning") is
  reported more often on the folder than without the break.
- pairs linked: files with prefill/decode workers whose both sides were linked, and pairs checked.

Files are laid out under a temporary tree <repo>/<upstream folder>/ so the doctor pairs across files only as it would
in the upstream checkout. Not a test: run it by hand.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import os
import posixpath
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CORPUS_META = ROOT / "bench" / "corpus"
MANIFEST = CORPUS_META / "MANIFEST.tsv"
JUDGEMENT = CORPUS_META / "judgement.yaml"
VARIANTS = CORPUS_META / "variants.yaml"
DEFAULT_CORPUS = Path(os.environ.get("DISAGG_CORPUS", "/work/corpus/files"))
LOUD = ("warning", "error")


def read_manifest(path: Path = MANIFEST) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def read_yaml_list(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if isinstance(data, dict):  # tolerate {findings: [...]} / {variants: [...]}
        data = next((v for v in data.values() if isinstance(v, list)), [])
    return list(data or [])


def folder_of(row: dict) -> str:
    return posixpath.join(row["repo"].replace("/", "_"), posixpath.dirname(row["path"]))


def lay_out(rows: list[dict], corpus: Path, into: Path) -> dict[str, str]:
    """Copy each row's file to into/<repo>/<upstream folder>/<file>; return {laid-out path: manifest file name}."""
    from disagg.schemas.formats import is_justfile

    where = {}
    for row in rows:
        source = corpus / row["file"]
        if not source.is_file():
            continue
        target = into / folder_of(row) / row["file"]
        upstream = posixpath.basename(row["path"])
        if is_justfile(upstream) and not is_justfile(row["file"]):
            target = target / upstream  # a file the doctor knows by its whole name (Justfile) keeps it, in a folder of its own
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        where[str(target)] = row["file"]
    return where


def run_doctor(paths: list[str]):
    from disagg.doctor.context import LintOptions
    from disagg.doctor.engine import lint_paths
    from disagg.doctor.registry import default_registry

    rules = [r for r in default_registry() if not r.live]
    # in this process: the parallel path (>= PARALLEL_MIN_FILES files) hands back results without their deployments,
    # and the scores read each file's workers
    from disagg.doctor import engine

    floor, engine.PARALLEL_MIN_FILES = engine.PARALLEL_MIN_FILES, 10**9
    try:
        return lint_paths(paths, rules, LintOptions())
    finally:
        engine.PARALLEL_MIN_FILES = floor


def loud(results, names: dict[str, str]) -> list[tuple[str, str, int, str, str]]:
    """(file, code, line, severity, message) of each warning/error finding, file as named in the manifest."""
    out = []
    for r in results:
        for f in r.findings:
            if f.severity.label in LOUD:
                out.append((names.get(f.path, os.path.basename(f.path)), f.code, f.line, f.severity.label, f.message))
    return out


def has_pd_worker(r) -> bool:
    """A prefill or decode worker in the file's deployment or in a further config it holds (Deployment.parts)."""
    return r.deployment is not None and any(w.role in ("prefill", "decode") for d in (r.deployment, *r.deployment.parts) for w in d.workers)


def score_files(rows: list[dict], results, names: dict[str, str], judged: list[dict]) -> dict:
    by_file = {names.get(r.path, os.path.basename(r.path)): r for r in results}
    pd_rows = [row for row in rows if row["pd"] == "yes"]
    laid_out = set(names.values())
    missing = [row["file"] for row in rows if row["file"] not in laid_out]  # not on disk: rebuild the corpus
    unread = []
    for row in pd_rows:
        r = by_file.get(row["file"])
        if r is None:
            if row["file"] in laid_out:  # on disk, but `disagg doctor FOLDER` never opened it (a file type it does not walk)
                unread.append((row["file"], "not opened: the folder walk does not take this file"))
            continue
        if r.error:
            unread.append((row["file"], "error: " + str(r.error).splitlines()[0][:160]))
        elif r.skipped:
            unread.append((row["file"], "skipped: " + str(r.skipped)[:160]))
    no_worker = [row["file"] for row in pd_rows if row["file"] in by_file and not by_file[row["file"]].error
                 and not by_file[row["file"]].skipped and not has_pd_worker(by_file[row["file"]])]
    findings = loud(results, names)
    verdict = {(j["file"], j["code"], int(j["line"])): str(j.get("verdict", "")).lower() for j in judged}
    true, false, unsettled, unjudged = [], [], [], []
    for item in findings:
        v = verdict.get(item[:3])
        {"true": true, "false": false, "unsettled": unsettled}.get(v, unjudged).append(item)
    with_workers = [r for r in results if has_pd_worker(r)]
    linked = [r for r in with_workers if r.pairs]
    by_code = collections.Counter(f[1] for f in findings)
    return {
        "files": len(rows),
        "files_absent": missing,
        "pd_files": len(pd_rows),
        "unread_pd": unread,
        "unread_pd_share": len(unread) / len(pd_rows) if pd_rows else 0.0,
        "pd_files_no_worker_recognised": no_worker,
        "findings": len(findings),
        "findings_by_code": dict(sorted(by_code.items())),
        "true": len(true),
        "false": len(false),
        "unsettled": [list(f[:3]) for f in unsettled],
        "unjudged": [list(f) for f in unjudged],
        "precision": len(true) / (len(true) + len(false)) if (true or false) else None,
        "files_with_pd_workers": len(with_workers),
        "files_linked": len(linked),
        "unlinked": sorted(names.get(r.path, os.path.basename(r.path)) for r in with_workers if not r.pairs),
        "pairs": sum(1 for r in results for p in r.pairs if p.prefill.path == r.path),
    }


def apply_variant(text: str, v: dict) -> str:
    find = v["find"]
    count = text.count(find)
    if count != 1:
        raise ValueError(f"variant {v['id']}: `find` occurs {count} times in {v['file']} (must be once)")
    if v.get("delete"):
        start = text.rfind("\n", 0, text.index(find)) + 1
        end = text.find("\n", text.index(find) + len(find))
        return text[:start] + (text[end + 1:] if end != -1 else "")
    return text.replace(find, v["replace"], 1)


def counts(results) -> collections.Counter:
    return collections.Counter(f.code for r in results for f in r.findings if f.severity.label in LOUD)


def score_variants(rows: list[dict], corpus: Path, variants: list[dict], split: str) -> dict:
    by_file = {row["file"]: row for row in rows}
    chosen = [v for v in variants if split == "all" or by_file.get(v["file"], {}).get("split") == split]
    caught, missed, broken = [], [], []
    base_cache: dict[str, collections.Counter] = {}
    for v in chosen:
        row = by_file.get(v["file"])
        if row is None or not (corpus / row["file"]).is_file():
            broken.append((v["id"], "file not in manifest or corpus"))
            continue
        folder_rows = [r for r in rows if folder_of(r) == folder_of(row)]
        with tempfile.TemporaryDirectory(prefix="disagg-variant-") as tmp:
            lay_out(folder_rows, corpus, Path(tmp))
            folder = str(Path(tmp) / folder_of(row))
            key = folder_of(row)
            if key not in base_cache:
                base_cache[key] = counts(run_doctor([folder]))
            target = Path(folder) / row["file"]
            try:
                target.write_text(apply_variant(target.read_text(encoding="utf-8"), v), encoding="utf-8")
            except ValueError as exc:
                broken.append((v["id"], str(exc)))
                continue
            after = counts(run_doctor([folder]))
        before = base_cache[key]
        new = {c for c in after if after[c] > before.get(c, 0)}
        expect = [str(e) for e in v.get("expect", [])]
        hit = bool(new) if "any-warning" in expect else bool(new & set(expect))
        entry = {"id": v["id"], "file": v["file"], "expect": expect, "new": sorted(new), "no_rule": bool(v.get("no_rule"))}
        (caught if hit else missed).append(entry)
    scored = len(caught) + len(missed)
    return {"variants": len(chosen), "caught": caught, "missed": missed, "broken": broken,
            "recall": len(caught) / scored if scored else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--split", choices=("heldout", "dev", "all"), default="heldout")
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument("--judgement", type=Path, default=JUDGEMENT)
    parser.add_argument("--variants", type=Path, default=VARIANTS)
    parser.add_argument("--no-variants", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not args.corpus.is_dir():
        sys.exit(f"{args.corpus} not found: rebuild it with bench/corpus/rebuild.py")
    every = read_manifest(args.manifest)
    rows = [r for r in every if args.split == "all" or r["split"] == args.split]
    with tempfile.TemporaryDirectory(prefix="disagg-corpus-") as tmp:
        names = lay_out(rows, args.corpus, Path(tmp))
        results = run_doctor([tmp]) if names else []
        s = score_files(rows, results, names, read_yaml_list(args.judgement))
    v = None if args.no_variants else score_variants(every, args.corpus, read_yaml_list(args.variants), args.split)
    if args.json:
        print(json.dumps({"split": args.split, "files": s, "variants": v}, indent=1, default=str))
        return 0
    print(f"split {args.split}: {s['files']} files, {s['pd_files']} with a prefill or decode worker")
    print()
    print("| measure | value |")
    print("|---|---|")
    print(f"| unread P/D files (error or skipped) | {len(s['unread_pd'])}/{s['pd_files']} ({s['unread_pd_share']:.0%}) |")
    print(f"| P/D files read, no prefill/decode worker recognised | {len(s['pd_files_no_worker_recognised'])} |")
    codes = ", ".join(f"{c} {n}" for c, n in s["findings_by_code"].items())
    print(f"| warning/error findings | {s['findings']} ({codes}) |")
    prec = "n/a" if s["precision"] is None else f"{s['precision']:.0%}"
    print(f"| judged true / false / unsettled / unjudged | {s['true']} / {s['false']} / {len(s['unsettled'])} / {len(s['unjudged'])} |")
    print(f"| precision (true / (true + false)) | {prec} |")
    print(f"| files with P/D workers, both sides linked | {s['files_linked']}/{s['files_with_pd_workers']} |")
    print(f"| prefill/decode pairs checked | {s['pairs']} |")
    if v is not None:
        rec = "n/a" if v["recall"] is None else f"{v['recall']:.0%}"
        print(f"| recall on variants | {len(v['caught'])}/{len(v['caught']) + len(v['missed'])} ({rec}) |")
    if s["files_absent"]:
        print(f"\nabsent from {args.corpus} (run bench/corpus/rebuild.py): {s['files_absent']}")
    if s["unread_pd"]:
        print("\nunread P/D files:")
        for name, why in s["unread_pd"]:
            print(f"  {name}: {why}")
    if s["pd_files_no_worker_recognised"]:
        print("\nP/D files read with no prefill/decode worker recognised:")
        for name in s["pd_files_no_worker_recognised"]:
            print(f"  {name}")
    if s["unlinked"]:
        print("\nfiles with P/D workers, not linked:")
        for name in s["unlinked"]:
            print(f"  {name}")
    if v is not None:
        if v["missed"]:
            print("\nvariants missed:")
            for m in v["missed"]:
                print(f"  {m['id']} ({m['file']}): expected {m['expect']}, new {m['new'] or 'nothing'}" + ("  [no rule today]" if m["no_rule"] else ""))
        if v["broken"]:
            print("\nvariants that could not be applied:")
            for vid, why in v["broken"]:
                print(f"  {vid}: {why}")
    if s["unjudged"]:
        print("\nunjudged findings (file, code, line, severity, message) for bench/corpus/judgement.yaml:")
        for f in s["unjudged"]:
            print(f"  - {{file: {f[0]}, code: {f[1]}, line: {f[2]}}}  # {f[3]}: {f[4][:160]}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
