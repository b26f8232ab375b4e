from __future__ import annotations

from disagg.schemas.config import known_services

from ...finding import Edit, Fix, Severity
from ...registry import Rule


class DG401(Rule):
    """## What it does
    Reports, in a Dynamo v0 config, a section whose name is a near miss of a service the config lacks
    (`VLLMWorker` for `VllmWorker`), and a key that is a near miss of a known option (`max-local-prefill-lenght`).
    Names that are no near miss are left alone: a section may belong to the user's own graph, and an option to the
    engine release the file targets. `remote_prefill` and `remote-prefill` are the same flag (vLLM's
    FlexibleArgumentParser), so underscores are never reported.

    ## Why is this bad?
    A section no service reads is ignored without a word, so the service it was meant for runs with its defaults
    (a misspelt `VllmWorker` leaves remote prefill off). A misspelt option in an engine section stops the worker at
    start with "unrecognized arguments"; elsewhere it is ignored.

    ## Example
    ```yaml
    VLLMWorker:
      remote-prefill: true
    ```

    ## Use instead
    ```yaml
    VllmWorker:
      remote-prefill: true
    ```
    """

    code = "DG401"
    name = "unknown-key"
    severity = Severity.WARNING
    also = {Severity.ERROR: "an unknown option of an engine section, which stops the worker at start",
            Severity.INFO: "an unknown option set to false, which the release passes as no argument at all (it has no effect)"}

    def check(self, ctx):
        services = known_services()
        dropped = {i.get("path") for i in ctx.deployment.issues if i.kind == "false_dropped"}
        for issue in ctx.deployment.issues:
            if issue.kind not in ("unknown_section", "unknown_key") or not issue.suggestion:
                continue
            path = issue.get("path")
            name = str(path[-1])
            rename = Fix(f"rename {name!r} to {issue.suggestion!r}", (Edit("replace", issue.span.line, issue.span.column, issue.span.end_line,
                                                                            issue.span.end_column, issue.suggestion),), safe=False)
            if issue.kind == "unknown_section":
                yield ctx.finding(self, issue.span, f"section {name!r} is no service of Dynamo's v0 graphs; did you mean {issue.suggestion!r}? "
                                  f"No service reads it, so {issue.suggestion} runs with its defaults", fix=rename)
                continue
            section = str(path[0])
            engine = services.get(section, {}).get("engine") and len(path) == 2
            if engine and path in dropped and self._false_dropped(ctx, section):
                # `key: false` becomes no argument at all (fact dynamo.v0.false_dropped): argparse never sees the name
                yield ctx.finding(self, issue.span, f"unknown option {name!r} in {section}; did you mean {issue.suggestion!r}? It is set to false, "
                                  "which Dynamo passes as no argument, so it has no effect: the engine default applies", fix=rename, severity=Severity.INFO)
            elif engine:
                yield ctx.finding(self, issue.span, f"unknown option {name!r} in {section}; did you mean {issue.suggestion!r}? "
                                  "The worker exits at start with 'unrecognized arguments'", fix=rename, severity=Severity.ERROR)
            else:
                yield ctx.finding(self, issue.span, f"unknown key {name!r} in {'.'.join(str(p) for p in path[:-1])}; did you mean {issue.suggestion!r}? "
                                  "As written it is ignored", fix=rename)

    @staticmethod
    def _false_dropped(ctx, section: str) -> bool:
        from disagg.schemas import knowledge

        fact = knowledge.fact("dynamo.v0.false_dropped")
        workers = [w for w in ctx.deployment.workers if w.section == (section,)]
        return bool(workers) and workers[0].target.verdict("dynamo", fact.releases) is True
