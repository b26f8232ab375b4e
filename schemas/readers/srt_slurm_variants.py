"""srt-slurm's override recipes: a top-level `base` recipe and `override_<name>` / `zip_override_<name>` sections,
each deep-merged onto the base to make one job's recipe.

Source: NVIDIA/srt-slurm at c88ef731636890ff6385a783e152c1790e15b194, src/srtctl/core/config.py: `deep_merge` (a
mapping merges into a mapping; a list or a scalar replaces; `null` deletes the key), `expand_zip_override` (every
list-valued leaf of a zip section is one dimension, a one-item list is used for every variant, variant i takes item
i), `generate_override_configs` (with no selector every override and zip variant runs and the base does not;
`srtctl apply -f recipe.yaml:base` runs the base alone); src/srtctl/cli/submit.py `is_override_config` (a file with
a top-level `base` key is one).

Each variant is read as the recipe it becomes, at the file positions where its values are written (the override's
where it sets one, the base's otherwise). Variants are alternatives, so each is a config of its own
(`Deployment.parts`), paired with none of the others. The base is read on its own only when the file has no
variant, since a base may leave for its overrides what they all set."""

from __future__ import annotations

import copy
from typing import Any

from ..knowledge.versions import Target
from ..model import Deployment, in_variant
from ..source import SourceDocument, SourceMap


def override_variants(doc: SourceDocument) -> list[tuple[str, dict, SourceMap]] | None:
    """(label, recipe, positions) of each variant when the document is an override recipe (every variant it makes is a
    recipe), else None: expanded once, for recognising the file and reading it."""
    from .srt_slurm import looks_like_recipe

    data = doc.data
    if not isinstance(data, dict) or "kind" in data or not isinstance(data.get("base"), dict):
        return None
    variants = _expand(data, doc.marks)
    return variants if variants and all(looks_like_recipe(m) for _, m, _ in variants) else None


def read(doc: SourceDocument, dep: Deployment, target: Target, finish, variants: list[tuple[str, dict, SourceMap]]) -> None:
    """The first of `variants` (override_variants) into `dep`, every other one into a Deployment of `dep.parts`;
    `finish(part)` completes each part as the file's own deployment is completed (roles, shared targets)."""
    from . import srt_slurm

    for i, (label, data, marks) in enumerate(variants):
        vdoc = SourceDocument(doc.path, doc.text, data, marks, doc.lines)
        into = dep if i == 0 else Deployment(path=doc.path, format="srt-slurm", lines=dep.lines)
        before = len(into.workers)
        srt_slurm.read(vdoc, into, target)
        for w in into.workers[before:]:
            w.name = in_variant(w.name, label)
        if i:
            finish(into)
            dep.parts.append(into)


def _expand(data: dict, marks: SourceMap) -> list[tuple[str, dict, SourceMap]]:
    """(label, recipe, positions) of every variant srtctl runs with no selector; the base alone when there is none."""
    base = data.get("base")
    if not isinstance(base, dict):
        return []
    out = []
    overrides = sorted(k for k in data if isinstance(k, str) and k.startswith("override_") and isinstance(data[k], dict))
    zips = sorted(k for k in data if isinstance(k, str) and k.startswith("zip_override_") and isinstance(data[k], dict))
    for key in overrides:
        out.append((key, _deep_merge(base, data[key]), _marks(marks, key, data[key], None)))
    for key in zips:
        n = _zip_length(data[key])
        for i in range(n or 0):
            out.append((f"{key}[{i}]", _deep_merge(base, _slice(data[key], i)), _marks(marks, key, data[key], i)))
    if not out:
        out.append(("base", copy.deepcopy(base), _marks(marks, None, None, None)))
    return out


def _deep_merge(base: dict, override: dict) -> dict:
    result = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _list_lengths(d: dict) -> list[int]:
    out: list[int] = []
    for v in d.values():
        if isinstance(v, list):
            out.append(len(v))
        elif isinstance(v, dict):
            out += _list_lengths(v)
    return out


def _zip_length(d: dict) -> int | None:
    """N of a zip section, or None where srtctl refuses it (no list, an empty one, or lengths that differ)."""
    lengths = _list_lengths(d)
    if not lengths or 0 in lengths:
        return None
    longer = {n for n in lengths if n != 1}
    return 1 if not longer else (longer.pop() if len(longer) == 1 else None)


def _slice(d: dict, i: int) -> dict:
    return {k: (v[0 if len(v) == 1 else i] if isinstance(v, list) else _slice(v, i) if isinstance(v, dict) else v) for k, v in d.items()}


def _marks(marks: SourceMap | None, key: str | None, section: dict | None, index: int | None) -> SourceMap:
    """Positions of a variant's paths: the base's, then the override section's over them (a zip leaf's item i)."""
    out = SourceMap()
    if marks is None:
        return out
    for source, target in ((marks.keys, out.keys), (marks.values, out.values)):
        for path, span in source.items():
            if path[:1] == ("base",):
                target[path[1:]] = span
        if key is None:
            continue
        for path, span in source.items():
            if path[:1] != (key,):
                continue
            rel = _relative(path[1:], section, index)
            if rel is not None:
                target[rel] = span
    return out


def _relative(rel: tuple, section: Any, index: int | None) -> tuple | None:
    """The variant's path for a path inside the override section; for a zip section, a list leaf's item `index` (or
    its only item) stands where the list is, and its other items are no part of this variant."""
    node, out = section, []
    for part in rel:
        if index is not None and isinstance(node, list):
            want = 0 if len(node) == 1 else index
            if part != want:
                return None
            node = node[part] if isinstance(part, int) and part < len(node) else None
            continue
        out.append(part)
        node = node.get(part) if isinstance(node, dict) else node[part] if isinstance(node, list) and isinstance(part, int) and part < len(node) else None
    if index is not None and isinstance(node, list):
        return None  # the list itself: its item's own position is used instead
    return tuple(out)
