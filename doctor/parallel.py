"""Many files on several cores (as ruff does): each process reads and checks batches of files one file at a time, and
the results come back in the order given, so the report is written as they come (output/stream.py). Files left with
a prefill or decode worker that found no partner in its own file are then read again together, so that pairs across
files (and what is reported at both ends) are exactly what one process would find; the report keeps their place."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NamedTuple

from disagg.schemas import pairing

from .check import lint_results
from .context import LintOptions
from .files import FileResult, read_path
from .registry import Rule, default_registry


class _Ref(NamedTuple):
    """The part of a worker that reports about a pair need (name, file, role and why, as `--verbose` says it), small
    enough to send between processes."""

    name: str
    path: str
    role: str
    span: tuple | None = None
    role_why: str = ""


class _PairRef(NamedTuple):
    decode: _Ref
    prefill: _Ref
    why: str

    @property
    def cross_file(self) -> bool:
        return self.decode.path != self.prefill.path


def _ref(w) -> _Ref:
    return _Ref(w.name, w.path, w.role, tuple(w.span) if w.span is not None else None, w.role_why)


class _Waits(NamedTuple):
    """What pairing across files needs to know of a file that waits for the others, instead of the file itself: the
    folders of its prefill or decode workers without a partner in it (pairs across files form only within one
    folder, schemas/pairing.across), and whether it names or offers something in another file of the run, in any
    folder (an OME service and its runtime)."""

    folders: tuple[str, ...]
    linked: bool


def _light(r: FileResult) -> tuple[FileResult, _Waits | None]:
    """A result without its deployment (cheap to send), and, when it needs the other files of the run (a prefill or
    decode worker without a partner, or a reference across files), what pairing them needs."""
    waits = None
    if r.deployment is not None:
        paired = {id(w) for p in r.pairs for w in p.ends()}
        alone = [w for w in r.deployment.workers if w.role in ("prefill", "decode") and id(w) not in paired]
        if alone or r.deployment.links or pairing.routes_across(r.deployment):
            folders = {os.path.dirname(r.path)} | {os.path.dirname(w.path or r.path) for w in alone}
            waits = _Waits(tuple(sorted(folders)), bool(r.deployment.links))
    out = FileResult(r.path, r.error)
    if waits:
        return out, waits  # checked again with the other files: nothing of this check is reported
    out.findings, out.skipped, out.prediction, out.crashed, out.crashes = r.findings, r.skipped, r.prediction, r.crashed, r.crashes
    out.pairs = [_PairRef(_ref(p.decode), _ref(p.prefill), p.why) for p in r.pairs]
    if r.findings:  # only the lines a finding quotes (text output shows them), not the file's whole text
        shown = {f.line for f in r.findings}
        out.source_lines = [line if n in shown else "" for n, line in enumerate(r.source_lines, 1)]
    return out, waits


def _groups(waiting: list[tuple[int, _Waits]]) -> list[list[int]]:
    """The files that wait, in groups that can pair only among themselves (each in the order given): files that
    share a folder of a waiting worker, and all files that name or offer something in another file. Checked one
    group at a time, so only one group's documents are held, with the same pairs as all of them at once."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for _, w in waiting:
        nodes = [*w.folders, *(["\0linked"] if w.linked else [])]
        for n in nodes[1:]:
            parent[root(n)] = root(nodes[0])
    groups: dict[str, list[int]] = {}
    for i, w in waiting:
        groups.setdefault(root(w.folders[0]), []).append(i)
    return list(groups.values())


def _chunk(args: tuple[list[tuple[str, bool]], list[str], LintOptions, str]) -> list[tuple[FileResult, _Waits | None]]:
    items, codes, options, fmt = args
    registry = default_registry()
    rules = [registry.get(c) for c in codes]
    # One file at a time: a file's document, source text and deployment are dropped as soon as it is checked (issue 23:
    # a share of thousands of files held them all until the last was checked). Checking a share's files together
    # would differ only in references across files, and a file that has one is lonely, so it is checked again below.
    return [_light(lint_results([read_path(path, explicit, options, fmt)], rules, options, cross_files=False)[0]) for path, explicit in items]


BATCH = 16  # files per task: small enough that results come back as they are done, large enough that passing tasks costs little


def stream_in_processes(items: list[tuple[str, bool]], rules: list[type[Rule]], options: LintOptions, fmt: str) -> Iterator[tuple]:
    """The results in the order of `items`, as report events (output/stream.Report.feed): ("file", result) for a file
    checked on its own, ("wait", i) for item i whose workers are paired across files, and at the end ("fill", i,
    result) for each of those, checked together."""
    import multiprocessing

    workers = min(os.cpu_count() or 1, 8)
    codes = [r.code for r in rules]
    waiting: list[tuple[int, _Waits]] = []
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        tasks = ((items[i:i + BATCH], codes, options, fmt) for i in range(0, len(items), BATCH))
        i = 0
        for part in pool.imap(_chunk, tasks):
            for r, waits in part:
                if waits:
                    waiting.append((i, waits))
                    yield ("wait", i)
                else:
                    yield ("file", r)
                i += 1
    for group in _groups(waiting):  # read the files whose workers lack a partner once more, with those they may pair with
        again = lint_results([read_path(*items[i], options, fmt) for i in group], rules, options)
        for i, r in zip(group, again):
            yield ("fill", i, r)


def lint_in_processes(items: list[tuple[str, bool]], rules: list[type[Rule]], options: LintOptions, fmt: str) -> list[FileResult]:
    """The results of `items` as a list (what stream_in_processes gives, each file in its place)."""
    out: list = []
    for event in stream_in_processes(items, rules, options, fmt):
        if event[0] == "file":
            out.append(event[1])
        elif event[0] == "wait":
            out.append(None)
        else:
            out[event[1]] = event[2]
    return out
