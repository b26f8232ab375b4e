"""Human output: each finding with its source line, a caret under the offending span, and the fix.

Written with plain ANSI styles rather than rich: importing rich's console costs ~20 ms, which made a cold
`disagg doctor` on a file with findings slower than yamllint (bench/bench_doctor.py); this output needs no layout.
"""

from __future__ import annotations

from collections import Counter

from ..finding import count
from .summary import pair_key, pairs_checked

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


def render_text(results, color: bool = False, show_fixes: bool = True, verbose: bool = False) -> str:
    w = _Writer(color)
    counts = {"error": 0, "warning": 0, "info": 0}
    given = {r.path for r in results}
    for r in results:
        if r.error:
            e = r.error
            w.line(w.style(f"{e.path}:{e.line}:{e.column}: ", "bold"), w.style("error", "bold red"), f": {e.message}")
            continue
        for crash in r.crashes:
            w.line(w.style(f"{r.path}:1:1: ", "bold"), w.style("error", "bold red"), f": {crash}")
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
            for rel in f.related:
                w.line(w.style("  see: ", "dim"), f"{rel.path}:{rel.line}:{rel.column}: {rel.message}")
            if f.assumed and verbose:
                w.line(w.style("  assumed: ", "dim"), f.assumed)
            if show_fixes and f.fix:
                label = {"safe": "fix", "unsafe": "fix (unsafe: --fix --unsafe-fixes)", "display": "fix"}[f.fix.applicability]
                if f.fix.manual:
                    label = f"fix (by hand: --fix does not edit a {f.fix.manual})"
                w.line(w.style(f"  {label}: ", "bold green"), f.fix.title)
            w.line()
        if r.prediction is not None:
            p = r.prediction
            reasons = ", ".join(f"{k} {v / p.total:.0%}" for k, v in sorted(p.reasons.items(), key=lambda kv: -kv[1]))
            w.line(
                w.style(f"{r.path}: ", "bold"), w.style("workload: ", "bold magenta"),
                f"{p.remote_share:.0%} of {count(p.total, 'request')} would prefill remotely ({reasons}); "
                "the queue term is not predicted statically (empty queue assumed)",
            )
        if verbose and r.skipped:
            w.line(w.style(f"{r.path}: ", "dim"), f"skipped: {r.skipped}")
        if verbose and r.pairs:
            shown = set()  # one line per pair of places, as the summary counts them (loop iterations are one place)
            for pair in r.pairs:
                key = pair_key(pair)
                if key in shown:
                    continue
                shown.add(key)
                if pair.prefill.path == r.path:
                    w.line(w.style(f"{r.path}: ", "dim"), f"checked {pair.prefill.name} (prefill: {pair.prefill.role_why}) with {pair.decode.name} "
                           f"(decode: {pair.decode.role_why})"
                           + (f" in {pair.decode.path}" if pair.cross_file else "") + f": {pair.why}")
                elif pair.prefill.path not in given:  # the prefill side was read from the folder (doctor/partners.py)
                    w.line(w.style(f"{r.path}: ", "dim"), f"checked {pair.decode.name} (decode) with {pair.prefill.name} (prefill) in "
                           f"{pair.prefill.path}, read from the same folder: {pair.why}")
    n_files = sum(1 for r in results if not r.skipped and not r.error)
    n_skipped = sum(1 for r in results if r.skipped)
    n_unreadable = sum(1 for r in results if r.error and not r.crashed)
    n_internal = sum(len(r.crashes) + r.crashed + sum(f.internal for f in r.findings) for r in results)
    n_pairs = pairs_checked(results)
    total = sum(counts.values())
    checked = f"{count(n_pairs, 'prefill/decode pair')} checked in {count(n_files, 'file')}"
    skipped = f"; {n_skipped} skipped (not serving configs{'' if verbose else ', --verbose lists them'})" if n_skipped else ""
    if n_files == 0 and n_unreadable == 0:
        w.line(w.style(f"No config files found ({n_skipped} skipped as not serving configs).", "bold yellow"))
    elif total == 0 and n_unreadable == 0 and n_internal == 0:
        if n_pairs:
            w.line(w.style(f"All checks passed: {checked}{skipped}.", "bold green"))
        else:
            w.line(w.style(f"No findings, but no prefill/decode pair was formed in {count(n_files, 'file')}: nothing that prefill and decode "
                           f"must agree on was compared{skipped}.", "bold yellow"))
    else:
        parts = [count(v, k) for k, v in counts.items() if v]
        if n_unreadable:
            parts.append(count(n_unreadable, "unreadable file"))
        if n_internal:
            parts.append(count(n_internal, "internal error") + " (a bug in disagg, exit code 3)")
        w.line(w.style(f"Found {count(total, 'finding')} ({', '.join(parts)}); {checked}{skipped}.", "bold"))
        fixes = Counter(f.fix.applicability for r in results for f in r.findings if f.fix)
        if fixes["safe"] or fixes["unsafe"]:  # as ruff says it
            w.line(f"{fixes['safe']} fixable with --fix" + (f" ({fixes['unsafe']} more with --fix --unsafe-fixes)" if fixes["unsafe"] else "") + ".")
    return "\n".join(w.lines)
