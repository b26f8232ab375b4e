"""What a rule sees: the parsed config, its source, the user's options, and a way to report at a document path."""

from __future__ import annotations

from typing import Any, NamedTuple

from disagg.schemas.config import DynamoV0Parse, Section
from disagg.schemas.source import Path, Pos

from .finding import Edit, Finding, Fix, Severity
from .workload import Workload


class LintOptions(NamedTuple):
    gpus: int | None = None  # GPUs available to the deployment (--gpus); None: ask NVML, else unknown
    workload: Workload | None = None


class LintContext:
    """A Dynamo v0 config (`parse`) or a deployment read from scripts, manifests and compose files (`deployment`)."""

    def __init__(self, parse: DynamoV0Parse | None, options: LintOptions | None = None, deployment=None):
        self.parse = parse
        self.deployment = deployment
        self.options = options or LintOptions()

    @property
    def path(self) -> str:
        return self.parse.doc.path if self.parse is not None else self.deployment.path

    def section(self, name: str) -> Section | None:
        return self.parse.section(name) if self.parse is not None else None

    def finding_at(self, rule: Any, span, message: str, fix: Fix | None = None, severity: Severity | None = None, **extra: Any) -> Finding:
        """A finding at a source span of a deployment (scripts, manifests): positions come from the parser."""
        return Finding(rule.code, rule.name, severity if severity is not None else rule.severity, message, self.path,
                       span.line, span.column, span.end_line, max(span.end_column, span.column + 1), fix, extra)

    def pos(self, path: Path, at: str = "key") -> Pos:
        marks = self.parse.doc.marks
        return marks.key(path) if at == "key" else marks.value(path)

    def finding(
        self,
        rule: Any,
        path: Path,
        message: str,
        fix: Fix | None = None,
        at: str = "key",
        severity: Severity | None = None,
        **extra: Any,
    ) -> Finding:
        p = self.pos(path, at)
        return Finding(
            code=rule.code,
            name=rule.name,
            severity=severity if severity is not None else rule.severity,
            message=message,
            path=self.path,
            line=p.line,
            column=p.column,
            end_line=p.end_line,
            end_column=p.end_column,
            fix=fix,
            extra=extra,
        )

    # Fix builders: every fix is one of the closed set of edits in finding.Edit.

    def fix_set_key(self, section: str, key: str, value: str, title: str) -> Fix:
        """Set `key: value` in `section`: replace the value where the section itself sets it, else insert the key."""
        doc = self.parse.doc
        sec = self.section(section)
        if sec is not None and key in sec.own:
            p = doc.marks.value((section, key))
            return Fix(title, (Edit("replace", p.line, p.column, p.end_line, p.end_column, value),))
        head = doc.marks.key((section,))
        if sec is not None and sec.own and doc.marks.key((section, next(iter(sec.own)))).line == head.line:
            return Fix(title)  # a flow mapping ({...}) on one line: say what to do, edit nothing
        indent = self._child_indent(section)
        return Fix(title, (Edit("insert_after", head.line, text=f"{indent}{key}: {value}"),))

    def fix_remove_key(self, path: Path, title: str) -> Fix:
        """Delete the line(s) that hold `path`'s key and value."""
        doc = self.parse.doc
        k, v = doc.marks.key(path), doc.marks.value(path)
        end_line = v.end_line if v.end_column > 1 else v.end_line - 1
        end_line = max(end_line, k.line)
        return Fix(title, (Edit("delete", k.line, 1, end_line + 1, 1),))

    def _child_indent(self, section: str) -> str:
        sec = self.section(section)
        doc = self.parse.doc
        if sec is not None:
            for key in sec.own:
                p = doc.marks.key((section, key))
                head = doc.marks.key((section,))
                if p.line > head.line:
                    return " " * (p.column - 1)
        return "  "
