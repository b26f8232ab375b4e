from __future__ import annotations

from disagg.schemas.cmdline import UNKNOWN_WRAPPER

from ...finding import Fix, Severity
from ...registry import Rule


def _namespaces_apart(dep) -> bool:
    """Prefill and decode engines of one engine family that pairing kept apart only by their Dynamo namespaces."""
    engines = [w for w in dep.workers if w.is_engine and w.system == "dynamo" and w.namespace]
    return any(p.engine == d.engine and p.namespace != d.namespace for p in engines if p.role == "prefill" for d in engines if d.role == "decode")


class DG405(Rule):
    """## What it does
    Says what was not checked: a file that shows disaggregated serving (a prefill worker, a decode worker, a KV
    connector, a scheduler with a prefill profile) where no prefill/decode pair could be formed, within the file or
    with the other files of the run, and why; a script's worker that has no partner in the branches of the script it
    can run with (the other branches of its `if`/`case` are alternatives); and workers whose command the file does
    not show.

    ## Why is this bad?
    Silence would read as "all checks passed" while nothing that prefill and decode must agree on was compared.
    Lint the prefill and decode files together (`disagg doctor deploy/`) so they can be paired.

    ## Example
    ```yaml
    # prefill.yaml alone: its decode side is in another file
    kind: Deployment
    metadata: {name: vllm-prefill}
    ```

    ## Use instead
    ```bash
    disagg doctor deploy/prefill.yaml deploy/decode.yaml
    ```
    """

    code = "DG405"
    name = "not-checked"
    severity = Severity.INFO

    def check(self, ctx):
        dep = ctx.deployment
        roles = {w.role for w in dep.workers if w.is_engine or w.program == "image-entrypoint"}
        intent = dep.intent()
        if intent and not ctx.linked and not ctx.apart:  # a split across files is DG601's
            by_kv_role = [w.role for w in dep.workers if w.is_engine and w.role_from == "connector"]
            one_way = set(by_kv_role)
            if len(by_kv_role) > 1 and len(one_way) == 1 and roles <= one_way | {"aggregated"}:
                why = f"every worker's kv_role makes it the {next(iter(one_way))} side (DG211 reports a kv_role pair that cannot exchange KV)"
            elif "prefill" in roles and "decode" not in roles:
                why = "its decode side is not in this file nor in the other files given"
            elif "decode" in roles and "prefill" not in roles:
                why = "its prefill side is not in this file nor in the other files given"
            elif "unknown" in roles:
                why = "no worker says whether it is the prefill or the decode side"
            elif dep.router and not dep.workers:
                why = "it is a scheduler config; its model servers are in other files"
            elif _namespaces_apart(dep):
                why = "its prefill and decode workers register in different Dynamo namespaces, where they never discover each other (DG601)"
            elif any(w.alternative for w in dep.of_role("prefill", "decode")):
                sel = sorted({b.selector or b.frame.split("#")[0] for w in dep.of_role("prefill", "decode") for b in w.alternative or ()})
                why = (f"its prefill and decode workers are in different branches of the script ({', '.join(sel)}), "
                       "which are alternatives: no run starts both")
            else:
                why = "no prefill and decode workers of the same engine were found"
            at = dep.router_span or (dep.workers[0].span if dep.workers else None)
            yield ctx.finding(self, at, f"not checked: {intent}, but no prefill/decode pair was formed because {why}",
                              fix=Fix("give the doctor every file of the deployment in one run"))
        if ctx.linked:
            # a script's branch with only one side: its worker has no partner in the branches it can run with
            ends = {id(x) for pair in ctx.linked for x in pair.ends()}
            for w in dep.of_role("prefill", "decode"):
                if w.is_engine and w.alternative and id(w) not in ends:
                    where = ", ".join(f"{b.selector or b.frame.split('#')[0]} branch {b.index + 1}" for b in w.alternative)
                    other = "decode" if w.role == "prefill" else "prefill"
                    yield ctx.finding(self, w.span, f"not checked: {w.name} ({w.role}) runs in {where} and has no {other} partner among the "
                                      "workers that can run with it (the script's other branches are alternatives)", worker=w,
                                      fix=Fix(f"start the {other} side in the same branch, or lint the file that starts it with this one"))
        for w in dep.workers:
            for note in w.notes:
                if "run time" in note or "not in the file" in note or "not in this file" in note or "image's entrypoint" in note:
                    fix = "put the wrapper script beside this one, or start the engine directly" if w.program == UNKNOWN_WRAPPER \
                        else "write the command in the file, or lint the rendered manifest"
                    yield ctx.finding(self, w.span, f"not checked: {w.name}: {note}", worker=w, fix=Fix(fix))

