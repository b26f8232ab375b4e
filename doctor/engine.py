"""Run the rules over files: the entry points. Reading is in files.py, pairing and checking in check.py, many
files on several cores in parallel.py; this module only chooses between one process and several, so that none of
them imports another in a circle. A cross-file finding is reported at both ends."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from .check import lint_results
from .context import LintOptions
from .files import STDIN, FileResult, collect_paths, read_file, read_path, read_target
from .registry import Rule

__all__ = ["FileResult", "collect_paths", "lint_paths", "lint_results", "lint_text", "read_file", "read_target"]

def lint_text(path: str, text: str, rules: Iterable[type[Rule]], options: LintOptions, explicit: bool = True, fmt: str = "auto") -> FileResult:
    """One file, read and checked on its own (tests, the live doctor, stdin)."""
    result = read_file(path, text, options, explicit, fmt)
    return lint_results([result], rules, options)[0]


PARALLEL_MIN_FILES = 64  # below this, starting processes costs more than it saves


def lint_paths(targets: Sequence[str], rules: list[type[Rule]], options: LintOptions, exclude: Sequence[str] = (), stdin_bytes: bytes | None = None,
               fmt: str = "auto", skip_unrecognized: bool = False) -> list[FileResult]:
    items = [(path, explicit and not skip_unrecognized) for path, explicit in collect_paths(targets, exclude)]
    if len(items) >= PARALLEL_MIN_FILES and (os.cpu_count() or 1) > 1 and STDIN not in targets:
        from .parallel import lint_in_processes

        return lint_in_processes(items, rules, options, fmt)
    return lint_results([read_path(path, explicit, options, fmt, stdin_bytes) for path, explicit in items], rules, options)


