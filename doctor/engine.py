"""Run the rules over files: the entry points. Reading is in files.py, pairing and checking in check.py, many
files on several cores in parallel.py; this module only chooses between one process and several, so that none of
them imports another in a circle. A cross-file finding is reported at both ends."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence

from .check import lint_results
from .context import LintOptions
from .files import STDIN, FileResult, collect_paths, read_file, read_path, read_target
from .registry import Rule

__all__ = ["FileResult", "collect_paths", "lint_paths", "lint_results", "lint_text", "read_file", "read_target", "stream_paths"]

def lint_text(path: str, text: str, rules: Iterable[type[Rule]], options: LintOptions, explicit: bool = True, fmt: str = "auto") -> FileResult:
    """One file, read and checked on its own (tests, the live doctor, stdin)."""
    result = read_file(path, text, options, explicit, fmt)
    return lint_results([result], rules, options)[0]


PARALLEL_MIN_FILES = 64  # below this, starting processes costs more than it saves


def stream_paths(targets: Sequence[str], rules: list[type[Rule]], options: LintOptions, exclude: Sequence[str] = (), stdin_bytes: bytes | None = None,
                 fmt: str = "auto", skip_unrecognized: bool = False, partner_search: bool = False) -> tuple[set[str], Iterator[tuple]]:
    """The paths of the files reported, and their results as report events in the order given (output/stream.Report.feed):
    on several cores each file's result comes as soon as it is checked (issue 23: nothing of a file is kept after it is
    reported); on one core, below PARALLEL_MIN_FILES files or with standard input, all are checked first, as lint_paths."""
    items = _items(targets, exclude, skip_unrecognized)
    given = {"<stdin>" if path == STDIN else path for path, _ in items}
    if _parallel(items, targets):
        from .parallel import stream_in_processes

        return given, stream_in_processes(items, rules, options, fmt)
    return given, (("file", r) for r in _lint_items(items, rules, options, stdin_bytes, fmt, partner_search))


def _items(targets: Sequence[str], exclude: Sequence[str], skip_unrecognized: bool) -> list[tuple[str, bool]]:
    return [(path, explicit and not skip_unrecognized) for path, explicit in collect_paths(targets, exclude)]


def _parallel(items: list[tuple[str, bool]], targets: Sequence[str]) -> bool:
    return len(items) >= PARALLEL_MIN_FILES and (os.cpu_count() or 1) > 1 and STDIN not in targets


def lint_paths(targets: Sequence[str], rules: list[type[Rule]], options: LintOptions, exclude: Sequence[str] = (), stdin_bytes: bytes | None = None,
               fmt: str = "auto", skip_unrecognized: bool = False, partner_search: bool = False) -> list[FileResult]:
    """`partner_search`: read the other side of a pair the files given leave out from their folder (partners.py)."""
    items = _items(targets, exclude, skip_unrecognized)
    if _parallel(items, targets):
        from .parallel import lint_in_processes

        return lint_in_processes(items, rules, options, fmt)
    return _lint_items(items, rules, options, stdin_bytes, fmt, partner_search)


def _lint_items(items: list[tuple[str, bool]], rules: list[type[Rule]], options: LintOptions, stdin_bytes: bytes | None, fmt: str,
                partner_search: bool) -> list[FileResult]:
    """One process: the files read and checked together."""
    results = [read_path(path, explicit, options, fmt, stdin_bytes) for path, explicit in items]
    if partner_search:
        from .finding import crash_summary
        from .partners import search_partners

        try:
            partners, failed = search_partners(results, options, fmt), None
        except Exception as exc:  # noqa: BLE001 - a bug in the search: the files given are still checked, without partners
            partners, failed = [], f"internal error: looking for partner files raised {crash_summary(exc)}; pairs with files not given were not checked"
        lint_results(results + partners, rules, options)
        if failed and not any(r.crashes or r.crashed for r in results):  # the same fault in pairing is reported once, there
            for r in results:
                if r.deployment is not None:
                    r.crashes.append(failed)
                    break
        return results  # the partners found are checked with them, but only the files given are reported
    return lint_results(results, rules, options)


