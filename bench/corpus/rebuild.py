"""Rebuild the held-out corpus (upstream files named in MANIFEST.tsv) outside the repository, and check every file
against the sha256 the manifest records. Upstream text never enters this repository: only its address does.

    python bench/corpus/rebuild.py                       # from raw.githubusercontent.com into /work/corpus/files
    python bench/corpus/rebuild.py --out DIR             # elsewhere
    python bench/corpus/rebuild.py --mirror /work/.mirror  # from bare git mirrors: DIR/owner+name/repo (or DIR/owner+name)
    python bench/corpus/rebuild.py --verify-only         # only check what is already in --out
    python bench/corpus/rebuild.py --manifest bench/corpus2/MANIFEST.tsv --out /work/corpus2/files [--mirror ...]
                                                         # another corpus (bench/corpus2: held out from corpus 1 too)

Exit status 0 when every file is there with the right bytes; 1 when some are missing or differ (listed).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "MANIFEST.tsv"
DEFAULT_OUT = Path("/work/corpus/files")
RAW = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"


def read_manifest(path: Path = MANIFEST) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_dir(mirror: Path, repo: str) -> Path | None:
    base = mirror / repo.replace("/", "+")
    for candidate in (base / "repo", base, base.with_name(base.name + ".git")):
        if (candidate / "HEAD").is_file():
            return candidate
    return None


def from_mirror(mirror: Path, row: dict, timeout: float) -> bytes:
    where = git_dir(mirror, row["repo"])
    if where is None:
        raise LookupError(f"no mirror of {row['repo']} under {mirror}")
    done = subprocess.run(
        ["git", "--git-dir", str(where), "show", f"{row['commit']}:{row['path']}"],
        capture_output=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise LookupError(done.stderr.decode("utf-8", "replace").strip() or "git show failed")
    return done.stdout


def from_github(row: dict, timeout: float) -> bytes:
    url = RAW.format(repo=row["repo"], commit=row["commit"], path=row["path"])
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (fixed https host)
            return response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise LookupError(f"{url}: {exc}") from exc


def rebuild(rows: list[dict], out: Path, mirror: Path | None = None, verify_only: bool = False, timeout: float = 30.0) -> dict:
    """Fetch (or only check) each row into out/<file>; return {"ok": [...], "missing": [(file, why)], "mismatch": [...]}."""
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, list] = {"ok": [], "missing": [], "mismatch": []}
    for row in rows:
        target = out / row["file"]
        if verify_only or (target.is_file() and sha256(target.read_bytes()) == row["sha256"]):
            if not target.is_file():
                report["missing"].append((row["file"], "not in " + str(out)))
                continue
            data = target.read_bytes()
        else:
            try:
                data = from_mirror(mirror, row, timeout) if mirror else from_github(row, timeout)
            except (LookupError, subprocess.TimeoutExpired) as exc:
                report["missing"].append((row["file"], str(exc)))
                continue
        got = sha256(data)
        if got != row["sha256"]:
            report["mismatch"].append((row["file"], got))
            continue
        if not target.is_file() or target.read_bytes() != data:
            target.write_bytes(data)
        report["ok"].append(row["file"])
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--mirror", type=Path, help="folder of bare git mirrors (owner+name/repo)")
    parser.add_argument("--verify-only", action="store_true")
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    report = rebuild(read_manifest(args.manifest), args.out, args.mirror, args.verify_only, args.timeout)
    for name, why in report["missing"]:
        print(f"missing   {name}: {why}")
    for name, got in report["mismatch"]:
        print(f"mismatch  {name}: sha256 {got}")
    print(f"{len(report['ok'])} ok, {len(report['missing'])} missing, {len(report['mismatch'])} mismatched -> {args.out}")
    return 1 if report["missing"] or report["mismatch"] else 0


if __name__ == "__main__":
    sys.exit(main())
