"""Renderers for the doctor's results: each returns a string; only the command line prints."""

from __future__ import annotations

FORMATS = ("text", "json", "sarif", "github", "junit")


def render(fmt: str, results, registry, color: bool = False, show_fixes: bool = True, verbose: bool = False) -> str:
    if fmt == "text":
        from .text import render_text

        return render_text(results, color=color, show_fixes=show_fixes, verbose=verbose)
    if fmt == "json":
        from .machine import render_json

        return render_json(results)
    if fmt == "sarif":
        from .sarif import render_sarif

        return render_sarif(results, registry)
    if fmt == "github":
        from .machine import render_github

        return render_github(results)
    if fmt == "junit":
        from .machine import render_junit

        return render_junit(results)
    raise ValueError(f"unknown output format {fmt!r}")
