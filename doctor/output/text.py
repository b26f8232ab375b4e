"""Human output: each finding with its source line, a caret under the offending span, and the fix.

Written with plain ANSI styles rather than rich: importing rich's console costs ~20 ms, which made a cold
`disagg doctor` on a file with findings slower than yamllint (bench/bench_doctor.py); this output needs no layout.
"""

from __future__ import annotations

_CODES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "magenta": "35", "cyan": "36"}
_SEVERITY = {"error": "bold red", "warning": "bold yellow", "info": "bold cyan"}


class _Writer:
    def __init__(self, color: bool):
        self.color = color
        self.lines: list[str] = []

    def style(self, text: str, style: str) -> str:
        if not self.color or not style:
            return text
        codes = ";".join(_CODES[s] for s in style.split())
        return f"\x1b[{codes}m{text}\x1b[0m"

    def line(self, *parts: str) -> None:
        self.lines.append("".join(parts))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def render_text(results, color: bool = False, show_fixes: bool = True) -> str:
    w = _Writer(color)
    counts = {"error": 0, "warning": 0, "info": 0}
    for r in results:
        if r.error:
            e = r.error
            w.line(w.style(f"{e.path}:{e.line}:{e.column}: ", "bold"), w.style("error", "bold red"), f": {e.message}")
            continue
        for f in r.findings:
            counts[f.severity.label] += 1
            sev = _SEVERITY[f.severity.label]
            w.line(w.style(f"{f.path}:{f.line}:{f.column}: ", "bold"), w.style(f"{f.code} [{f.severity.label}] ", sev), f.message)
            src = r.source_lines[f.line - 1].rstrip() if 0 < f.line <= len(r.source_lines) else ""
            if src:
                number = f"{f.line:>5}"
                w.line(w.style(f"{number} | ", "dim"), src)
                if f.end_line == f.line and f.end_column > f.column:
                    width = f.end_column - f.column
                else:
                    width = max(1, len(src) - f.column + 1)
                w.line(w.style(" " * len(number) + " | ", "dim"), " " * (f.column - 1), w.style("^" * width, sev))
            if show_fixes and f.fix:
                w.line(w.style("  fix: ", "bold green"), f.fix.title)
            w.line()
        if r.prediction is not None:
            p = r.prediction
            reasons = ", ".join(f"{k} {v / p.total:.0%}" for k, v in sorted(p.reasons.items(), key=lambda kv: -kv[1]))
            w.line(
                w.style(f"{r.path}: ", "bold"), w.style("workload: ", "bold magenta"),
                f"{p.remote_share:.0%} of {_plural(p.total, 'request')} would prefill remotely ({reasons}); "
                "the queue term is not predicted statically (empty queue assumed)",
            )
    n_files = sum(1 for r in results if not r.skipped)
    n_unreadable = sum(1 for r in results if r.error)
    total = sum(counts.values())
    if total == 0 and n_unreadable == 0:
        w.line(w.style(f"All checks passed ({_plural(n_files, 'file')}).", "bold green"))
    else:
        parts = [_plural(v, k) for k, v in counts.items() if v]
        if n_unreadable:
            parts.append(_plural(n_unreadable, "unreadable file"))
        w.line(w.style(f"Found {_plural(total, 'finding')} ({', '.join(parts)}) in {_plural(n_files, 'file')}.", "bold"))
    return "\n".join(w.lines)
