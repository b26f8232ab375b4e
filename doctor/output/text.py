"""Human output: each finding with its source line, a caret under the offending span, and the fix.

Written with plain ANSI styles rather than rich: importing rich's console costs ~20 ms, which made a cold
`disagg doctor` on a file with findings slower than yamllint (bench/bench_doctor.py); this output needs no layout.
"""

from __future__ import annotations

from ..finding import count
from .stream import Report
from .summary import pair_key

_CODES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "magenta": "35", "cyan": "36"}
_SEVERITY = {"error": "bold red", "warning": "bold yellow", "info": "bold cyan"}


class _Style:
    def __init__(self, color: bool):
        self.color = color

    def __call__(self, text: str, style: str) -> str:
        if not self.color or not style:
            return text
        codes = ";".join(_CODES[s] for s in style.split())
        return f"\x1b[{codes}m{text}\x1b[0m"


class TextReport(Report):
    sections = ("lines",)
    live = ("", "\n")

    def __init__(self, out, given=frozenset(), color: bool = False, show_fixes: bool = True, verbose: bool = False):
        self.style, self.show_fixes, self.verbose = _Style(color), show_fixes, verbose
        super().__init__(out, given)

    def pieces(self, r) -> dict[str, list[str]]:
        return {"lines": self._lines(r)}

    def _lines(self, r) -> list[str]:
        style, verbose, out = self.style, self.verbose, []
        if r.error:
            e = r.error
            return [style(f"{e.path}:{e.line}:{e.column}: ", "bold") + style("error", "bold red") + f": {e.message}"]
        for crash in r.crashes:
            out.append(style(f"{r.path}:1:1: ", "bold") + style("error", "bold red") + f": {crash}")
        for f in r.findings:
            sev = _SEVERITY[f.severity.label]
            out.append(style(f"{f.path}:{f.line}:{f.column}: ", "bold") + style(f"{f.code} [{f.severity.label}] ", sev) + f.message)
            src = r.source_lines[f.line - 1].rstrip() if 0 < f.line <= len(r.source_lines) else ""
            if src:
                number = f"{f.line:>5}"
                out.append(style(f"{number} | ", "dim") + src)
                if f.end_line == f.line and f.end_column > f.column:
                    width = f.end_column - f.column
                else:
                    width = max(1, len(src) - f.column + 1)
                out.append(style(" " * len(number) + " | ", "dim") + " " * (f.column - 1) + style("^" * width, sev))
            for rel in f.related:
                out.append(style("  see: ", "dim") + f"{rel.path}:{rel.line}:{rel.column}: {rel.message}")
            if f.assumed and verbose:
                out.append(style("  assumed: ", "dim") + f.assumed)
            if self.show_fixes and f.fix:
                label = {"safe": "fix", "unsafe": "fix (unsafe: --fix --unsafe-fixes)", "display": "fix"}[f.fix.applicability]
                if f.fix.manual:
                    label = f"fix (by hand: --fix does not edit a {f.fix.manual})"
                out.append(style(f"  {label}: ", "bold green") + f.fix.title)
            out.append("")
        if r.prediction is not None:
            p = r.prediction
            reasons = ", ".join(f"{k} {v / p.total:.0%}" for k, v in sorted(p.reasons.items(), key=lambda kv: -kv[1]))
            out.append(
                style(f"{r.path}: ", "bold") + style("workload: ", "bold magenta")
                + f"{p.remote_share:.0%} of {count(p.total, 'request')} would prefill remotely ({reasons}); "
                "the queue term is not predicted statically (empty queue assumed)"
            )
        if verbose and r.skipped:
            out.append(style(f"{r.path}: ", "dim") + f"skipped: {r.skipped}")
        if verbose and r.pairs:
            shown = set()  # one line per pair of places, as the summary counts them (loop iterations are one place)
            for pair in r.pairs:
                key = pair_key(pair)
                if key in shown:
                    continue
                shown.add(key)
                if pair.prefill.path == r.path:
                    out.append(style(f"{r.path}: ", "dim") + f"checked {pair.prefill.name} (prefill: {pair.prefill.role_why}) with {pair.decode.name} "
                               f"(decode: {pair.decode.role_why})"
                               + (f" in {pair.decode.path}" if pair.cross_file else "") + f": {pair.why}")
                elif pair.prefill.path not in self.given:  # the prefill side was read from the folder (doctor/partners.py)
                    out.append(style(f"{r.path}: ", "dim") + f"checked {pair.decode.name} (decode) with {pair.prefill.name} (prefill) in "
                               f"{pair.prefill.path}, read from the same folder: {pair.why}")
        return out

    def tail(self) -> None:
        t, style, verbose = self.tally, self.style, self.verbose
        total = sum(t.severity.values())
        checked = f"{count(t.pairs, 'prefill/decode pair')} checked in {count(t.files, 'file')}"
        skipped = f"; {t.skipped} skipped (not serving configs{'' if verbose else ', --verbose lists them'})" if t.skipped else ""
        summary = []
        if t.files == 0 and t.unreadable == 0:
            summary.append(style(f"No config files found ({t.skipped} skipped as not serving configs).", "bold yellow"))
        elif total == 0 and t.unreadable == 0 and t.internal == 0:
            if t.pairs:
                summary.append(style(f"All checks passed: {checked}{skipped}.", "bold green"))
            else:
                summary.append(style(f"No findings, but no prefill/decode pair was formed in {count(t.files, 'file')}: nothing that prefill and decode "
                                     f"must agree on was compared{skipped}.", "bold yellow"))
        else:
            parts = [count(v, k) for k, v in t.severity.items() if v]
            if t.unreadable:
                parts.append(count(t.unreadable, "unreadable file"))
            if t.internal:
                parts.append(count(t.internal, "internal error") + " (a bug in disagg, exit code 3)")
            summary.append(style(f"Found {count(total, 'finding')} ({', '.join(parts)}); {checked}{skipped}.", "bold"))
            if t.fixes["safe"] or t.fixes["unsafe"]:  # as ruff says it
                summary.append(f"{t.fixes['safe']} fixable with --fix" + (f" ({t.fixes['unsafe']} more with --fix --unsafe-fixes)" if t.fixes["unsafe"] else "") + ".")
        lines = self.write_rest(["lines"], "", "\n", written=self._written)
        self.out.write(("\n" if lines else "") + "\n".join(summary))

