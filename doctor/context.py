"""What a rule sees: one deployment, the prefill/decode pairs that involve it, the user's options, and ways to report
a finding at a source span (with the release it assumed) and to build fixes from the closed set of edits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from disagg.schemas.model import Deployment, Pair, Worker
from disagg.schemas.source import Span

from .finding import Edit, Finding, Fix, Related, Severity

FLOW_MAPPING = "flow mapping"  # a section written as {...}: the doctor edits block mappings only

if TYPE_CHECKING:
    from .workload import Workload


class LintOptions(NamedTuple):
    gpus: int | None = None  # GPUs available to the deployment (--gpus / [tool.disagg] gpus); None: unknown
    workload: "Workload | None" = None
    target: dict[str, str] = {}  # --target-version dynamo=0.5.0,vllm=0.11.2


class LintContext:
    def __init__(self, deployment: Deployment, options: LintOptions | None = None, pairs: list[Pair] | None = None, linked: list[Pair] | None = None,
                 apart: list | None = None):
        self.deployment = deployment
        self.options = options or LintOptions()
        self.pairs = pairs or []  # pairs checked in this file: its own, and cross-file ones whose prefill end is here
        self.linked = linked if linked is not None else self.pairs  # every pair with an end in this file
        self.apart = apart or []  # pairing.Split with an end here: prefill and decode of one deployment, in two files, that never meet

    @property
    def path(self) -> str:
        return self.deployment.path

    def finding(self, rule: Any, span: Span | None, message: str, *, worker: Worker | None = None, fix: Fix | None = None,
                severity: Severity | None = None, related: tuple[Related, ...] = (), assumed: str = "", roles: tuple[Worker, ...] = (),
                **extra: Any) -> Finding:
        """A finding at `span` in the file of `worker` (this deployment's file when no worker is given).

        `roles`: the workers whose prefill/decode role the verdict rests on. When only a name gives one of them its role
        (`Worker.role_guessed`), the finding is an info whatever the rule says: a warning or error must rest on what
        the system reads."""
        span = span or (worker.span if worker is not None else Span(1, 1, 1, 2))
        path = worker.path if worker is not None else self.path
        severity = severity if severity is not None else rule.severity
        guessed = [w for w in dict.fromkeys(roles) if w.role_guessed]
        if guessed and severity > Severity.INFO:
            severity = Severity.INFO
            message += " (an info only: " + "; ".join(f"{w.name} is {w.role} by its name alone, {w.role_why}" for w in guessed) \
                + "; nothing it runs with says so)"
        return Finding(rule.code, rule.name, severity, message, path,
                       span.line, span.column, span.end_line, max(span.end_column, span.column + 1) if span.end_line == span.line else span.end_column,
                       fix, extra, related, assumed)

    @staticmethod
    def related(worker: Worker, span: Span | None, message: str) -> Related:
        s = span or worker.span
        return Related(worker.path, s.line, s.column, s.end_line, s.end_column, message)

    def pair_finding(self, rule: Any, pair: Pair, at: Worker, span: Span | None, message: str, **kw: Any) -> Finding:
        """A finding about a pair at one end, with the other end as a related location."""
        other = pair.prefill if at is pair.decode else pair.decode
        key = kw.pop("other_key", None)
        rel = self.related(other, other.where(key) if key else other.span, f"{other.name} ({other.role}), the other end")
        kw.setdefault("roles", (pair.decode, pair.prefill))
        if pair.guess and (kw.get("severity") or rule.severity) > Severity.INFO:  # severity=None: the rule's own
            kw["severity"] = Severity.INFO
            message += f" (an info only: this pair is a guess: {pair.guess})"
        return self.finding(rule, span, message, worker=at, related=(rel,), **kw)

    # --- fixes on Dynamo v0 YAML (a section's keys) --------------------------------------------------------------

    def fix_set_key(self, section: str | None, key: str, value: str, title: str, safe: bool = True) -> Fix:
        """Set `key: value` in `section`: replace the value where the section sets it, else insert the key. No
        section (a v0 config read from a string inside the file): the fix is said, not edited."""
        doc = self.deployment.doc
        if section is None:
            return Fix(title)
        data = doc.data if doc is not None and isinstance(doc.data, dict) else {}
        sec = data.get(section)
        if doc is None or not isinstance(sec, dict) and sec is not None:
            return Fix(title)
        if isinstance(sec, dict) and key in sec:
            p = doc.marks.value((section, key))
            return Fix(title, (Edit("replace", p.line, p.column, p.end_line, p.end_column, value),), safe)
        head = doc.marks.key((section,))
        if isinstance(sec, dict) and sec and doc.marks.key((section, next(iter(sec)))).line == head.line:
            return Fix(title, manual=FLOW_MAPPING)  # a flow mapping ({...}) on one line: say what to do, edit nothing
        if sec is None and doc.line_text(head.line).rstrip().endswith(("{}", "null", "~")):
            return Fix(title, manual=FLOW_MAPPING if doc.line_text(head.line).rstrip().endswith("{}") else "empty section")
        return Fix(title, (Edit("insert_after", head.line, text=f"{self._child_indent(section)}{key}: {value}"),), safe)

    def fix_remove_key(self, path: tuple, title: str, safe: bool = True) -> Fix:
        """Delete the line(s) that hold `path`'s key and value (only when nothing else shares them)."""
        doc = self.deployment.doc
        if doc is None:
            return Fix(title)
        k, v = doc.marks.key(path), doc.marks.value(path)
        end_line = v.end_line if v.end_column > 1 else v.end_line - 1
        end_line = max(end_line, k.line)
        first = doc.line_text(k.line)
        if first[: k.column - 1].strip() or doc.line_text(end_line)[v.end_column - 1 :].split("#")[0].strip():
            return Fix(title, manual=FLOW_MAPPING)  # shares its line with other keys (a flow mapping): do not cut it apart
        return Fix(title, (Edit("delete", k.line, 1, end_line + 1, 1),), safe)

    def _child_indent(self, section: str) -> str:
        doc = self.deployment.doc
        sec = doc.data.get(section) if isinstance(doc.data, dict) else None
        head = doc.marks.key((section,))
        if isinstance(sec, dict):
            for key in sec:
                p = doc.marks.key((section, key))
                if p.line > head.line:
                    return " " * (p.column - 1)
        return " " * (head.column + 1)

    def assumed(self, worker: Worker, system: str = "dynamo") -> str:
        return worker.target.describe(system)
