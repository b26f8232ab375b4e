"""JSON, GitHub workflow commands and JUnit XML."""

from __future__ import annotations

import io
import json
from xml.etree import ElementTree as ET

from disagg import __version__

from .summary import pairs_checked


def render_json(results) -> str:
    findings = [f.to_dict() for r in results for f in r.findings]
    given = {r.path for r in results}
    errors = [{"path": r.error.path, "line": r.error.line, "column": r.error.column, "message": r.error.message, "internal": r.crashed} for r in results if r.error]
    errors += [{"path": r.path, "line": 1, "column": 1, "message": crash, "internal": True} for r in results for crash in r.crashes]
    doc = {
        "version": __version__,
        "findings": findings,
        "errors": errors,
        "files": [
            {"path": r.path, "status": "error" if r.error else ("skipped" if r.skipped else "linted"),
             "pairs": [{"prefill": p.prefill.name, "prefill_path": p.prefill.path, "decode": p.decode.name, "decode_path": p.decode.path, "why": p.why} for p in r.pairs if p.prefill.path == r.path or p.prefill.path not in given],
             **({"prediction": r.prediction.to_dict()} if r.prediction else {}), **({"skipped": r.skipped} if r.skipped else {})}
            for r in results
        ],
        "summary": {
            "files": sum(1 for r in results if not r.skipped and not r.error),
            "skipped": sum(1 for r in results if r.skipped),
            "unreadable": sum(1 for r in results if r.error and not r.crashed),
            "internal_errors": sum(len(r.crashes) + r.crashed + sum(f.internal for f in r.findings) for r in results),
            "pairs_checked": pairs_checked(results),
        },
    }
    return json_text(doc)


def json_text(doc) -> str:
    """`json.dumps(doc, indent=2)`, written piece by piece into one buffer: json.dumps with an indent joins a list of
    every piece (a million for 5,000 files with findings, ~25 MiB more at its peak, issue 23); the text is the same."""
    out = io.StringIO()
    json.dump(doc, out, indent=2)
    return out.getvalue()


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_prop(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


_LEVEL = {"error": "error", "warning": "warning", "info": "notice"}


def render_github(results) -> str:
    lines = []
    for r in results:
        if r.error:
            e = r.error
            lines.append(f"::error file={_escape_prop(e.path)},line={e.line},col={e.column},title=disagg::{_escape_data(e.message)}")
        for crash in r.crashes:
            lines.append(f"::error file={_escape_prop(r.path)},line=1,col=1,title=disagg::{_escape_data(crash)}")
        for f in r.findings:
            title = _escape_prop(f"{f.code} {f.name}")
            msg = f.message + (f" (fix: {f.fix.title})" if f.fix else "")
            lines.append(
                f"::{_LEVEL[f.severity.label]} file={_escape_prop(f.path)},line={f.line},col={f.column},"
                f"endLine={f.end_line},endColumn={f.end_column},title={title}::{_escape_data(msg)}"
            )
    return "\n".join(lines)


def render_junit(results) -> str:
    suites = ET.Element("testsuites", name="disagg doctor")
    total = failures = errors = 0
    for r in results:
        suite = ET.SubElement(suites, "testsuite", name=r.path)
        n_fail = n_err = 0
        if r.error:
            case = ET.SubElement(suite, "testcase", classname=r.path, name="load")
            err = ET.SubElement(case, "error", message=r.error.message, type="ConfigError")
            err.text = str(r.error)
            n_err += 1
        elif not r.findings:
            ET.SubElement(suite, "testcase", classname=r.path, name="skipped" if r.skipped else "no findings")
        for i, crash in enumerate(r.crashes):
            case = ET.SubElement(suite, "testcase", classname=r.path, name=f"internal error {i + 1}")
            ET.SubElement(case, "error", message=crash, type="InternalError").text = crash
            n_err += 1
        for f in r.findings:
            case = ET.SubElement(suite, "testcase", classname=r.path, name=f"{f.code} {f.name} at {f.line}:{f.column}")
            text = f"{f.path}:{f.line}:{f.column}: {f.code} {f.message}" + (f"\nfix: {f.fix.title}" if f.fix else "")
            if f.severity.label == "info":
                out = ET.SubElement(case, "system-out")  # a note is no failure (the exit code agrees)
                out.text = text
                continue
            if f.internal:  # the rule raised: an error of the tool, not a failure of the config
                ET.SubElement(case, "error", message=f.message, type="InternalError").text = text
                n_err += 1
                continue
            fail = ET.SubElement(case, "failure", message=f.message, type=f.severity.label)
            fail.text = text
            n_fail += 1
        cases = len(suite)
        suite.set("tests", str(cases))
        suite.set("failures", str(n_fail))
        suite.set("errors", str(n_err))
        total, failures, errors = total + cases, failures + n_fail, errors + n_err
    suites.set("tests", str(total))
    suites.set("failures", str(failures))
    suites.set("errors", str(errors))
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode")
