"""What the doctor reports: findings with a position, a severity and an optional fix made of a closed set of edits."""

from __future__ import annotations

from enum import IntEnum
from typing import Any, Literal, NamedTuple


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
    title: str
    edits: tuple[Edit, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "edits": [e.to_dict() for e in self.edits]}


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
        }
        out.update(self.extra)
        return out


def apply_edits(text: str, edits: list[Edit]) -> str:
    """Apply non-overlapping edits to `text`, last first so earlier positions stay valid."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    for e in sorted(edits, key=lambda e: (e.line, e.column), reverse=True):
        if e.kind == "insert_after":
            new = e.text if e.text.endswith("\n") else e.text + "\n"
            lines[e.line : e.line] = [new]
            continue
        start = sum(len(x) for x in lines[: e.line - 1]) + e.column - 1
        end = sum(len(x) for x in lines[: e.end_line - 1]) + e.end_column - 1
        joined = "".join(lines)
        joined = joined[:start] + (e.text if e.kind == "replace" else "") + joined[end:]
        lines = joined.splitlines(keepends=True)
    return "".join(lines)
