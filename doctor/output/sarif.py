"""SARIF 2.1.0, for GitHub code scanning and other SARIF consumers."""

from __future__ import annotations

from pathlib import Path

from disagg import __version__

from ..registry import doc_sections

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


def render_sarif(results, registry) -> str:
    rules = list(registry)
    index = {r.code: i for i, r in enumerate(rules)}
    sarif_rules = []
    for r in rules:
        sections = doc_sections(r.doc())
        sarif_rules.append({
            "id": r.code,
            "name": r.name,
            "shortDescription": {"text": r.summary()},
            "fullDescription": {"text": " ".join(sections.get("Why is this bad?", "").split())},
            "help": {"text": r.doc(), "markdown": r.doc()},
            "defaultConfiguration": {"level": _LEVEL[r.severity.label]},
        })
    out_results = []
    for res in results:
        for f in res.findings:
            if f.internal:
                continue  # a rule that raised is a tool execution notification below, not a result
            item = {
                "ruleId": f.code,
                "ruleIndex": index[f.code],
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
            out_results.append(item)
    notifications = [
        {
            "level": "error",
            "message": {"text": r.error.message},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": _uri(r.error.path)}, "region": {"startLine": r.error.line, "startColumn": r.error.column}}}],
        }
        for r in results if r.error
    ]
    notifications += [
        {"level": "error", "message": {"text": crash}, "locations": [{"physicalLocation": {"artifactLocation": {"uri": _uri(r.path)}, "region": {"startLine": 1, "startColumn": 1}}}]}
        for r in results for crash in r.crashes
    ]
    notifications += [
        {"level": "error", "message": {"text": f.message}, "associatedRule": {"id": f.code, "index": index[f.code]} if f.code in index else {"id": f.code},
         "locations": [{"physicalLocation": {"artifactLocation": {"uri": _uri(f.path)}, "region": _region(f.line, f.column, f.end_line, f.end_column)}}]}
        for r in results for f in r.findings if f.internal
    ]
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "disagg", "version": __version__, "rules": sarif_rules}},
            "results": out_results,
            "invocations": [{"executionSuccessful": not notifications, "toolExecutionNotifications": notifications}],
        }],
    }
    from .machine import json_text

    return json_text(doc)
