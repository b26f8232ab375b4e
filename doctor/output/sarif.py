"""SARIF 2.1.0, for GitHub code scanning and other SARIF consumers."""

from __future__ import annotations

from pathlib import Path

from disagg import __version__

from ..registry import doc_sections
from .stream import Report, json_array, json_element, json_template

_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def _uri(path: str) -> str:
    """A valid URI reference: percent-encoded relative paths (spaces, `#`), file: URIs for absolute ones, and a
    name for standard input."""
    from urllib.parse import quote

    if path == "<stdin>":
        return "stdin"
    p = Path(path)
    return p.as_uri() if p.is_absolute() else quote(p.as_posix(), safe="/-._~")


def _region(line: int, column: int, end_line: int, end_column: int) -> dict:
    return {"startLine": line, "startColumn": column, "endLine": max(end_line, line), "endColumn": max(end_column, 1)}


def _fix(f) -> list[dict]:
    if not f.fix or not f.fix.edits:
        return []
    replacements = []
    for e in f.fix.edits:
        if e.kind == "insert_after":
            region = {"startLine": e.line + 1, "startColumn": 1, "endLine": e.line + 1, "endColumn": 1}
            replacements.append({"deletedRegion": region, "insertedContent": {"text": e.text + "\n"}})
        else:
            replacements.append({"deletedRegion": _region(e.line, e.column, e.end_line, e.end_column), **({"insertedContent": {"text": e.text}} if e.kind == "replace" else {})})
    return [{"description": {"text": f.fix.title}, "artifactChanges": [{"artifactLocation": {"uri": _uri(f.path)}, "replacements": replacements}]}]


class SarifReport(Report):
    """SARIF 2.1.0 as `json.dump(doc, indent=2)` writes it, with the results written as each file is done; a tool
    execution notification (a file that cannot be read, a stage or rule that raised) waits for the results' end."""

    sections = ("results", "unreadable", "crashes", "internal")

    def __init__(self, out, registry, given=frozenset()):
        rules = list(registry)
        self.index = {r.code: i for i, r in enumerate(rules)}
        doc = {
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [{
                "tool": {"driver": {"name": "disagg", "version": __version__, "rules": [_rule(r) for r in rules]}},
                "results": "\0",
                "invocations": [{"executionSuccessful": "\0", "toolExecutionNotifications": "\0"}],
            }],
        }
        self._parts, self._indents = json_template(doc)
        self.live = json_array(self._indents[0])[:2]
        super().__init__(out, given)

    def head(self) -> str:
        return self._parts[0]

    def pieces(self, res) -> dict[str, list[str]]:
        results, notes = self._indents[0] + 2, self._indents[2] + 2
        out: dict[str, list[str]] = {"results": [json_element(self._result(f), results) for f in res.findings if not f.internal]}
        if res.error:
            e = res.error
            out["unreadable"] = [json_element({"level": "error", "message": {"text": e.message},
                                               "locations": [{"physicalLocation": {"artifactLocation": {"uri": _uri(e.path)}, "region": {"startLine": e.line, "startColumn": e.column}}}]}, notes)]
        if res.crashes:
            out["crashes"] = [json_element({"level": "error", "message": {"text": crash},
                                            "locations": [{"physicalLocation": {"artifactLocation": {"uri": _uri(res.path)}, "region": {"startLine": 1, "startColumn": 1}}}]}, notes)
                              for crash in res.crashes]
        internal = [f for f in res.findings if f.internal]
        if internal:
            out["internal"] = [json_element({"level": "error", "message": {"text": f.message},
                                             "associatedRule": {"id": f.code, "index": self.index[f.code]} if f.code in self.index else {"id": f.code},
                                             "locations": [{"physicalLocation": {"artifactLocation": {"uri": _uri(f.path)}, "region": _region(f.line, f.column, f.end_line, f.end_column)}}]}, notes)
                               for f in internal]
        return out

    def _result(self, f) -> dict:
        item = {
            "ruleId": f.code,
            "ruleIndex": self.index[f.code],
            "level": _LEVEL[f.severity.label],
            "message": {"text": f.message + (f" Fix: {f.fix.title}." if f.fix else "")},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": _uri(f.path)}, "region": _region(f.line, f.column, f.end_line, f.end_column)}}],
        }
        fixes = _fix(f)
        if fixes:
            item["fixes"] = fixes
        if f.related:
            item["relatedLocations"] = [{"id": i, "message": {"text": rel.message},
                                         "physicalLocation": {"artifactLocation": {"uri": _uri(rel.path)}, "region": _region(rel.line, rel.column, rel.end_line, rel.end_column)}}
                                        for i, rel in enumerate(f.related)]
        return item

    def tail(self) -> None:
        self.write_rest(["results"], *json_array(self._indents[0]), written=self._written)
        self.out.write(self._parts[1])
        t = self.tally
        # a notification for each unreadable file, crash and internal-error finding (a crashed reader is an unreadable file too)
        notified = t.errors or t.internal
        self.out.write("false" if notified else "true")
        self.out.write(self._parts[2])
        self.write_rest(["unreadable", "crashes", "internal"], *json_array(self._indents[2]))
        self.out.write(self._parts[3])


def _rule(r) -> dict:
    sections = doc_sections(r.doc())
    return {
        "id": r.code,
        "name": r.name,
        "shortDescription": {"text": r.summary()},
        "fullDescription": {"text": " ".join(sections.get("Why is this bad?", "").split())},
        "help": {"text": r.doc(), "markdown": r.doc()},
        "defaultConfiguration": {"level": _LEVEL[r.severity.label]},
    }

