"""Renderers for the doctor's results: a report is written file by file (stream.py) into any text stream; `render`
gives it as a string. Only the command line prints."""

from __future__ import annotations

FORMATS = ("text", "json", "sarif", "github", "junit")


def open_report(fmt: str, out, registry, given=frozenset(), color: bool = False, show_fixes: bool = True, verbose: bool = False):
    """A report in `fmt` written to `out`: `add` each file's result in the order given (`wait`/`fill` for one that
    comes later), then `close`. `given`: the paths of the files reported."""
    if fmt == "text":
        from .text import TextReport

        return TextReport(out, given, color=color, show_fixes=show_fixes, verbose=verbose)
    if fmt == "json":
        from .machine import JsonReport

        return JsonReport(out, given)
    if fmt == "sarif":
        from .sarif import SarifReport

        return SarifReport(out, registry, given)
    if fmt == "github":
        from .machine import GithubReport

        return GithubReport(out, given)
    if fmt == "junit":
        from .machine import JunitReport

        return JunitReport(out, given)
    raise ValueError(f"unknown output format {fmt!r}")


def render(fmt: str, results, registry, color: bool = False, show_fixes: bool = True, verbose: bool = False) -> str:
    import io

    report = open_report(fmt, io.StringIO(), registry, {r.path for r in results}, color=color, show_fixes=show_fixes, verbose=verbose)
    for r in results:
        report.add(r)
    report.close()
    return report.out.getvalue()
