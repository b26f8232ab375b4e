"""Assign each corpus file to `dev` or `heldout`, at random but reproducibly (seed below), before anyone looks at
how the doctor does on the files.

Files are drawn by upstream folder (repository + directory), not one by one: a prefill script and its decode script,
or the values and the rendered output of one chart example, belong together, and a variant is scored with the other
files of its folder. Folders are shuffled with SEED and taken into `dev` until it holds DEV_TARGET files; every other
folder is `heldout`.

    python bench/corpus/make_split.py            # rewrite the split column of MANIFEST.tsv
    python bench/corpus/make_split.py --check    # exit 1 when MANIFEST.tsv does not match the draw
"""

from __future__ import annotations

import argparse
import csv
import posixpath
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "MANIFEST.tsv"
SEED = 20261204
DEV_TARGET = 25


def group(row: dict) -> tuple[str, str]:
    return row["repo"], posixpath.dirname(row["path"])


def draw(rows: list[dict]) -> dict[str, str]:
    groups = sorted({group(r) for r in rows})
    random.Random(SEED).shuffle(groups)
    dev: set[tuple[str, str]] = set()
    count = 0
    for g in groups:
        if count >= DEV_TARGET:
            break
        dev.add(g)
        count += sum(1 for r in rows if group(r) == g)
    return {r["file"]: ("dev" if group(r) in dev else "heldout") for r in rows}


def read(path: Path = MANIFEST) -> tuple[list[str], list[dict]]:
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        return list(reader.fieldnames or []), list(reader)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    fields, rows = read(args.manifest)
    split = draw(rows)
    if args.check:
        wrong = [r["file"] for r in rows if r["split"] != split[r["file"]]]
        for name in wrong:
            print(f"split differs from the draw: {name}")
        return 1 if wrong else 0
    for r in rows:
        r["split"] = split[r["file"]]
    with open(args.manifest, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"dev {sum(1 for r in rows if r['split'] == 'dev')}, heldout {sum(1 for r in rows if r['split'] == 'heldout')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
