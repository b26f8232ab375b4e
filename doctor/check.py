"""Check deployments already read: pair prefill with decode within and across files, run the rules, filter by
`# disagg: noqa`, sort. A rule that raises is contained: its findings so far are kept, the failure is reported as an
internal-error finding with the rule's code (exit code 3), and the other rules run."""

from __future__ import annotations

from collections.abc import Iterable

from disagg.schemas import pairing
from disagg.schemas.gcpause import paused_gc
from disagg.schemas.model import VARIANT_IN_NAME, Deployment, Pair, Worker
from disagg.schemas.readers import link_files
from disagg.schemas.source import Span, noqa_codes

from .context import LintContext, LintOptions
from .files import FileResult
from .finding import INTERNAL_ERROR, Finding, Related, Severity, crash_summary
from .registry import Rule, matches


def lint_results(results: list[FileResult], rules: Iterable[type[Rule]], options: LintOptions, cross_files: bool = True) -> list[FileResult]:
    """Pair, check and sort the findings of files already read (`cross_files=False`: each file on its own)."""
    static = [r for r in rules if not r.live]
    try:
        link_files([r.deployment for r in results if r.deployment is not None])  # references across files (an OME service -> its runtime)
    except Exception as exc:  # noqa: BLE001 - a linking bug: each file is still checked on its own
        for r in results:
            if r.deployment is not None:
                r.crashes.append(f"internal error: linking files raised {crash_summary(exc)}; references across files were not followed")
    own: dict[int, list[Pair]] = {}
    for r in results:
        for unit in _units(r.deployment):
            try:
                own[id(unit)] = pairing.within(unit)
            except Exception as exc:  # noqa: BLE001 - a pairing bug: this file is checked without pairs
                own[id(unit)] = []
                r.crashes.append(f"internal error: pairing the workers raised {crash_summary(exc)}; the rules ran without pairs")
    # a file of several configs that may be alternatives (Deployment.parts) pairs none of them with other files either
    deps = [r.deployment for r in results if r.deployment is not None and not r.deployment.parts]
    paired = {id(w) for ps in own.values() for p in ps for w in p.ends()}
    cross: list[Pair] = []
    apart: list[pairing.Split] = []
    if cross_files:
        try:
            cross = pairing.across(deps, paired)
            apart = pairing.splits(deps, paired | {id(w) for p in cross for w in p.ends()})
        except Exception as exc:  # noqa: BLE001 - a pairing bug: files are checked without pairs across them
            for r in results:
                if r.deployment is not None:
                    r.crashes.append(f"internal error: pairing workers across files raised {crash_summary(exc)}; pairs across files were not checked")
    by_path: dict[str, list[Finding]] = {}
    for r in results:
        dep = r.deployment
        if dep is None:
            continue
        r.pairs = [p for unit in _units(dep) for p in own[id(unit)]] + [p for p in cross if dep.path in (p.prefill.path, p.decode.path)]
        for unit in _units(dep):
            pairs = own[id(unit)] + [p for p in cross if p.prefill.path == dep.path]
            ctx = LintContext(unit, options, pairs, r.pairs, apart=[s for s in apart if dep.path in (s.prefill.path, s.decode.path)])
            with paused_gc():  # one file's rules (gcpause.py)
                for rule in static:
                    for f in _run_rule(rule, ctx):
                        by_path.setdefault(f.path, []).append(f)
                        if f.related and f.related[0].path != f.path:  # a cross-file finding: report it at the other end too
                            rel = f.related[0]
                            back = Related(f.path, f.line, f.column, f.end_line, f.end_column, "the other end of this finding")
                            by_path.setdefault(rel.path, []).append(f._replace(path=rel.path, line=rel.line, column=rel.column, end_line=rel.end_line,
                                                                               end_column=rel.end_column, related=(back,)))
        if options.workload is not None:
            try:
                r.prediction = _prediction(dep, options)
            except Exception as exc:  # noqa: BLE001 - a prediction bug: the findings stand without it
                r.crashes.append(f"internal error: the workload prediction raised {crash_summary(exc)}")
    for r in results:
        found = by_path.get(r.path, [])
        unique = _once(_unsuppressed(found, r.source_lines))
        r.findings = sorted(unique, key=lambda f: (f.line, f.column, f.code, f.message))
    return results


def _once(findings: Iterable[Finding]) -> list[Finding]:
    """Each finding once; one that several alternative configs of a file share (the same code, place and words but
    for the variant its workers are named with) once, naming every variant it holds in."""
    groups: dict[tuple, list[Finding]] = {}
    for f in findings:
        groups.setdefault((f.code, f.line, f.column, VARIANT_IN_NAME.sub("", f.message)), []).append(f)
    out = []
    for group in groups.values():
        labels = list(dict.fromkeys(m.group(1) for f in group for m in VARIANT_IN_NAME.finditer(f.message)))
        first = group[0]
        if len(labels) > 1:
            first = first._replace(message=VARIANT_IN_NAME.sub(f" (variants {', '.join(labels)})", first.message))
        out.append(first)
    return out


def _units(dep: Deployment | None) -> list[Deployment]:
    """The deployments a file's rules run on: the file's, and each further config it holds (Deployment.parts)."""
    return [] if dep is None else [dep, *dep.parts]


def _run_rule(rule: type[Rule], ctx: LintContext) -> list[Finding]:
    """The rule's findings; when it raises, those it yielded before and one internal-error finding with its code."""
    out: list[Finding] = []
    try:
        for f in rule().check(ctx):
            out.append(f)
    except Exception as exc:  # noqa: BLE001 - a rule bug must not end the run (exit code 3 says it happened)
        out.append(internal_finding(rule.code, exc, ctx.deployment))
    return out


def internal_finding(code: str, exc: BaseException, dep: Deployment) -> Finding:
    """A finding that stands for rule `code` raising `exc` on `dep`: at the worker the rule was looking at when the
    traceback shows one, else at the file's first line."""
    worker = _worker_in_traceback(exc)
    span = worker.span if worker is not None else Span(1, 1, 1, 2)
    path = worker.path if worker is not None else dep.path
    about = f" while checking {worker.name}" if worker is not None else ""
    message = (f"internal error: rule {code} raised {crash_summary(exc)}{about}; the other rules ran, this one's findings for the file may be "
               "incomplete (a bug in disagg: please report it with this file)")
    end_column = max(span.end_column, span.column + 1) if span.end_line == span.line else span.end_column
    return Finding(code, INTERNAL_ERROR, Severity.ERROR, message, path, span.line, span.column, span.end_line, end_column,
                   extra={"internal_error": {"exception": type(exc).__name__, "detail": str(exc)[:500]}})


def _worker_in_traceback(exc: BaseException) -> Worker | None:
    """The worker (or a pair's prefill end) held in the innermost frame of the traceback that holds one."""
    tb, frames = exc.__traceback__, []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        for value in frame.f_locals.values():
            if isinstance(value, Worker) and value.span is not None:
                return value
            if isinstance(value, Pair):
                return value.prefill
    return None


def _prediction(dep: Deployment, options: LintOptions):
    from .rules._helpers import routing_policy, v0_decode
    from .workload import predict

    dec = v0_decode(dep)
    if dec is None:
        return None
    return predict(routing_policy(dec), options.workload, prefill_workers_alive=bool(dep.of_role("prefill")))


def _unsuppressed(findings: list[Finding], lines: list[str]) -> Iterable[Finding]:
    """Findings that no `# disagg: noqa` on their line suppresses; an internal error is never suppressed."""
    for f in findings:
        codes = noqa_codes(lines[f.line - 1]) if 0 < f.line <= len(lines) else None
        if f.internal or codes is None or not any(matches(f.code, c, exact=c != "ALL" and len(c) >= 5) for c in codes):
            yield f
