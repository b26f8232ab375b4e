"""JSON, GitHub workflow commands and JUnit XML, each written file by file (stream.py)."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from disagg import __version__

from .stream import Report, json_array, json_element, json_template


class JsonReport(Report):
    """`json.dump(doc, indent=2)` of {"version", "findings", "errors", "files", "summary"}, the same bytes, with the
    findings written as each file is done and the errors and files sections kept until the findings end."""

    sections = ("findings", "errors", "crashes", "files")

    def __init__(self, out, given=frozenset()):
        self._parts, self._indents = json_template({"version": __version__, "findings": "\0", "errors": "\0", "files": "\0", "summary": "\0"})
        self._arrays = [json_array(i) for i in self._indents]
        self.live = self._arrays[0][:2]
        super().__init__(out, given)

    def head(self) -> str:
        return self._parts[0]

    def pieces(self, r) -> dict[str, list[str]]:
        find, err, files = (self._indents[i] + 2 for i in range(3))
        out = {"findings": [json_element(f.to_dict(), find) for f in r.findings]}
        if r.error:
            out["errors"] = [json_element({"path": r.error.path, "line": r.error.line, "column": r.error.column, "message": r.error.message, "internal": r.crashed}, err)]
        if r.crashes:
            out["crashes"] = [json_element({"path": r.path, "line": 1, "column": 1, "message": crash, "internal": True}, err) for crash in r.crashes]
        pairs = [{"prefill": p.prefill.name, "prefill_path": p.prefill.path, "decode": p.decode.name, "decode_path": p.decode.path, "why": p.why}
                 for p in r.pairs if p.prefill.path == r.path or p.prefill.path not in self.given]
        out["files"] = [json_element({"path": r.path, "status": "error" if r.error else ("skipped" if r.skipped else "linted"), "pairs": pairs,
                                      **({"prediction": r.prediction.to_dict()} if r.prediction else {}), **({"skipped": r.skipped} if r.skipped else {})}, files)]
        return out

    def tail(self) -> None:
        t = self.tally
        self.write_rest(["findings"], *self._arrays[0], written=self._written)
        self.out.write(self._parts[1])
        self.write_rest(["errors", "crashes"], *self._arrays[1])
        self.out.write(self._parts[2])
        self.write_rest(["files"], *self._arrays[2])
        self.out.write(self._parts[3])
        summary = {"files": t.files, "skipped": t.skipped, "unreadable": t.unreadable, "internal_errors": t.internal, "pairs_checked": t.pairs}
        self.out.write(json_element(summary, self._indents[3]) + self._parts[4])


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_prop(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


_LEVEL = {"error": "error", "warning": "warning", "info": "notice"}


class GithubReport(Report):
    sections = ("lines",)
    live = ("", "\n")

    def pieces(self, r) -> dict[str, list[str]]:
        lines = []
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
        return {"lines": lines}

    def tail(self) -> None:
        self.write_rest(["lines"], "", "\n", written=self._written)


class JunitReport(Report):
    """One <testsuite> per file; the root's totals are known at the end, so every suite waits in the spool."""

    sections = ("suites",)

    def __init__(self, out, given=frozenset()):
        self.totals = [0, 0, 0]  # tests, failures, errors
        super().__init__(out, given)

    def head(self) -> str:
        return '<?xml version="1.0" encoding="UTF-8"?>\n'

    def pieces(self, r) -> dict[str, list[str]]:
        return {"suites": [ET.tostring(_suite(r)[0], encoding="unicode")]}

    def add(self, r) -> None:
        super().add(r)
        self._count(r)

    def fill(self, key, r) -> None:
        super().fill(key, r)
        self._count(r)

    def _count(self, r) -> None:
        _, cases, failures, errors = _suite(r)
        self.totals = [self.totals[0] + cases, self.totals[1] + failures, self.totals[2] + errors]

    def tail(self) -> None:
        root = ET.Element("testsuites", name="disagg doctor")
        for key, value in zip(("tests", "failures", "errors"), self.totals):
            root.set(key, str(value))
        if not self._spools["suites"].count and not self._holes["suites"]:
            self.out.write(ET.tostring(root, encoding="unicode"))
            return
        ET.SubElement(root, "x")
        text = ET.tostring(root, encoding="unicode")
        cut = text.index("<x />")
        self.write_rest(["suites"], text[:cut], "")
        self.out.write(text[cut + len("<x />"):])


def _suite(r) -> tuple[ET.Element, int, int, int]:
    """A file's <testsuite>, with its test cases, failures and errors."""
    suite = ET.Element("testsuite", name=r.path)
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
    return suite, cases, n_fail, n_err
