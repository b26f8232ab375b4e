"""What the doctor reports: findings with a position, a severity and an optional fix made of a closed set of edits."""

from __future__ import annotations

from enum import IntEnum
from typing import Any, Literal, NamedTuple


def count(n: float, word: str, plural: str | None = None) -> str:
    """`1 request`, `2 requests`: a number with its noun, for messages."""
    n = int(n)
    return f"{n} {word if n == 1 else plural or word + 's'}"


class Severity(IntEnum):
    INFO = 0
    WARNING = 1
    ERROR = 2

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> "Severity":
        try:
            return cls[text.upper()]
        except KeyError:
            raise ValueError(f"unknown severity {text!r}; use error, warning or info") from None


class Edit(NamedTuple):
    """One text edit. Positions are 1-based; `insert_after` adds `text` as whole lines after `line`."""

    kind: Literal["insert_after", "replace", "delete"]
    line: int
    column: int = 1
    end_line: int = 0
    end_column: int = 0
    text: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "line": self.line, "column": self.column, "end_line": self.end_line, "end_column": self.end_column, "text": self.text}


class Fix(NamedTuple):
    """A fix and its safety (ruff's applicability): `--fix` applies safe ones, `--unsafe-fixes` adds the rest; a fix
    with no edits only says what to do."""

    title: str
    edits: tuple[Edit, ...] = ()
    safe: bool = True
    manual: str = ""  # why --fix cannot make this edit (e.g. "flow mapping"): said in the output, never silent

    @property
    def applicability(self) -> str:
        return "display" if not self.edits else ("safe" if self.safe else "unsafe")

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "applicability": self.applicability, "edits": [e.to_dict() for e in self.edits]}


class Related(NamedTuple):
    """Another place a finding is about (the other end of a prefill/decode pair, in this file or another)."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int
    message: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self._asdict())


class Finding(NamedTuple):
    code: str
    name: str
    severity: Severity
    message: str
    path: str
    line: int
    column: int
    end_line: int
    end_column: int
    fix: Fix | None = None
    extra: dict[str, Any] = {}  # e.g. the workload prediction behind DG102 (never mutated)
    related: tuple[Related, ...] = ()
    assumed: str = ""  # the release the verdict assumes, and why ("dynamo 0.3.2 (image tag vllm-runtime:0.3.2)")

    @property
    def internal(self) -> bool:
        """The rule `code` raised instead of checking (a bug in disagg, exit code 3), not a finding about the config."""
        return self.name == INTERNAL_ERROR

    def to_dict(self) -> dict[str, Any]:
        out = {
            "code": self.code,
            "name": self.name,
            "severity": self.severity.label,
            "message": self.message,
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "fix": self.fix.to_dict() if self.fix else None,
            "assumed": self.assumed,
            "related": [r.to_dict() for r in self.related],
        }
        out.update(self.extra)
        return out


INTERNAL_ERROR = "internal-error"  # the name of the finding that stands for a rule that raised


def crash_summary(exc: BaseException) -> str:
    """`KeyError: 'x' (at DG207.py:41)`: the exception and the innermost line of ours that raised it."""
    import traceback

    where = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if "disagg" in frame.filename or "/doctor/" in frame.filename or "/schemas/" in frame.filename:
            where = f" (at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})"
            break
    text = str(exc)
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(exc).__name__}{': ' + text if text else ''}{where}"


def overlapping(edits: list[Edit]) -> list[Edit]:
    """Edits that touch what an earlier one in the list touches (they cannot both apply). Ranges are in half lines:
    an insertion after line L sits between L and L+1, so it does not clash with an edit inside line L."""
    taken: list[tuple[int, int]] = []
    clashes = []
    for e in edits:
        if e.kind == "insert_after":
            lo = hi = 2 * e.line + 1
        else:
            end = e.end_line - 1 if e.end_column == 1 and e.end_line > e.line else e.end_line
            lo, hi = 2 * e.line, 2 * max(end, e.line)
        if any(not (hi < a or lo > b) for a, b in taken):
            clashes.append(e)
        else:
            taken.append((lo, hi))
    return clashes


def apply_edits(text: str, edits: list[Edit]) -> str:
    """Apply non-overlapping edits to `text`, last first so earlier positions stay valid; line endings are kept."""
    newline = "\r\n" if "\r\n" in text else "\n"
    ends_with_newline = text.endswith(("\n", "\r"))
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += newline
    for e in sorted(edits, key=lambda e: (e.line, e.column), reverse=True):
        if e.kind == "insert_after":
            new = e.text.rstrip("\r\n") + newline
            lines[e.line : e.line] = [new]
            continue
        start = sum(len(x) for x in lines[: e.line - 1]) + e.column - 1
        end = sum(len(x) for x in lines[: e.end_line - 1]) + e.end_column - 1
        joined = "".join(lines)
        joined = joined[:start] + (e.text if e.kind == "replace" else "") + joined[end:]
        lines = joined.splitlines(keepends=True)
    out = "".join(lines)
    if not ends_with_newline and out.endswith(newline):
        out = out[: -len(newline)]
    return out
