"""Many files on several cores (as ruff does): each process reads and checks its share of the files on their own;
files left with a prefill or decode worker that found no partner in its own file are then read again together, so
that pairs across files (and what is reported at both ends) are exactly what one process would find."""

from __future__ import annotations

import os
from typing import NamedTuple

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


def _light(r: FileResult) -> tuple[FileResult, bool]:
    """A result without its deployment (cheap to send), and whether it needs the other files of the run: a prefill or
    decode worker without a partner, or a reference across files."""
    lonely = False
    if r.deployment is not None:
        paired = {id(w) for p in r.pairs for w in p.ends()}
        lonely = any(w.role in ("prefill", "decode") and id(w) not in paired for w in r.deployment.workers)
        lonely = lonely or bool(r.deployment.links)  # names or offers something in another file (an OME runtime)
    out = FileResult(r.path, r.error)
    out.findings, out.skipped, out.prediction, out.crashed, out.crashes = r.findings, r.skipped, r.prediction, r.crashed, r.crashes
    out.pairs = [_PairRef(_ref(p.decode), _ref(p.prefill), p.why) for p in r.pairs]
    return out, lonely


def _chunk(args: tuple[list[tuple[str, bool]], list[str], LintOptions, str]) -> list[tuple[FileResult, bool]]:
    items, codes, options, fmt = args
    registry = default_registry()
    rules = [registry.get(c) for c in codes]
    # One file at a time: a file's document, source text and deployment are dropped as soon as it is checked (issue 23:
    # a share of thousands of files held them all until the last was checked). Checking a share's files together
    # would differ only in references across files, and a file that has one is lonely, so it is checked again below.
    return [_light(lint_results([read_path(path, explicit, options, fmt)], rules, options, cross_files=False)[0]) for path, explicit in items]


def lint_in_processes(items: list[tuple[str, bool]], rules: list[type[Rule]], options: LintOptions, fmt: str) -> list[FileResult]:
    import multiprocessing

    workers = min(os.cpu_count() or 1, 8)
    codes = [r.code for r in rules]
    shares = [items[i::workers] for i in range(workers)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        done = pool.map(_chunk, [(share, codes, options, fmt) for share in shares])
    by_path = {r.path: (r, lonely) for part in done for r, lonely in part}
    lonely = [(path, explicit) for path, explicit in items if by_path.get(path, (None, False))[1]]
    if lonely:  # read the files whose workers lack a partner once more, together: pairs across files
        for r in lint_results([read_path(path, explicit, options, fmt) for path, explicit in lonely], rules, options):
            by_path[r.path] = (r, False)
    out = []
    for path, _ in items:
        r = by_path[path][0]
        if not r.source_lines and r.findings:
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    lines = handle.read().splitlines()
                # only the lines a finding quotes (text output shows them): 5,000 files' whole texts were kept to the end
                shown = {f.line for f in r.findings}
                r.source_lines = [line if n in shown else "" for n, line in enumerate(lines, 1)]
            except OSError:
                pass
        out.append(r)
    return out
