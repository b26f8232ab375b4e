"""Scripts saved with CRLF line ends: the shell takes a backslash before the carriage return as an escaped CR, not
as a line continuation (POSIX XCU 2.2.1 "Escape Character": only a backslash followed by a <newline> continues the
line; bash's manual, 3.1.2.1, says the same), so a command written over several `\\`-ended lines ends at its first
line and each line after it runs as a command of its own. The reader reads such a script as the shell does; this
finds where a launched server's command was cut."""

from __future__ import annotations

from collections.abc import Iterable

from ..model import Issue
from ..source import Span


def _cut_at(line: str) -> int | None:
    """The column of an unquoted line-ending `\\` before a CR, or None (an even run of backslashes is escaped)."""
    if not line.endswith("\\\r"):
        return None
    body = line[:-1]
    run = len(body) - len(body.rstrip("\\"))
    return len(body) if run % 2 else None


def broken_continuations(text: str, commands: Iterable) -> list[Issue]:
    """An issue per launched command whose last line ends in `\\` + CR, naming the lines cut off after it."""
    if "\\\r\n" not in text:
        return []
    lines = text.split("\n")
    out = []
    for cmd in commands:
        last = max((a.span.end_line for a in cmd.args), default=cmd.start.line)
        if last > len(lines):
            continue
        col = _cut_at(lines[last - 1])
        if col is None:
            continue
        cut = []
        for following in lines[last:]:
            if not following.strip():
                break
            cut.append(following.strip().rstrip("\\").strip())
            if _cut_at(following) is None:
                break
        out.append(Issue("crlf_continuation", Span(last, col, last, col + 1), cmd.program,
                         data=(("cut", tuple(cut)),)))
    return out
