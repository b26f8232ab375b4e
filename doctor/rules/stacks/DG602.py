from __future__ import annotations

from disagg.schemas import knowledge

from ...finding import Fix, Severity
from ...registry import Rule


class DG602(Rule):
    """## What it does
    Notes a Dynamo frontend without `--enforce-disagg` in front of prefill workers, in the releases where the flag
    exists, is honoured and defaults to off (1.1 and 1.2). In 1.0 the frontend did not fall back unless
    `--decode-fallback` was given; from 1.3 the flag is accepted and ignored (readiness follows the registered worker
    types); before 0.7 it did not exist. Where the release is unknown, nothing is said.

    ## Why is this bad?
    When no prefill worker is alive the frontend then serves every request aggregated on the decode workers. That
    keeps the service up, but it is exactly the silent degradation this tool exists to expose.

    ## Example
    ```bash
    python -m dynamo.frontend --http-port 8000 --router-mode kv
    ```

    ## Use instead
    ```bash
    python -m dynamo.frontend --http-port 8000 --router-mode kv --enforce-disagg
    ```
    """

    code = "DG602"
    name = "dynamo-silent-aggregated-fallback"
    severity = Severity.INFO

    def check(self, ctx):
        dep = ctx.deployment
        if not dep.of_role("prefill"):
            return
        for w in dep.of_role("frontend"):
            if w.program != "dynamo.frontend" or "enforce-disagg" in w.flags or "DYN_ENFORCE_DISAGG" in w.env:
                continue
            exists = knowledge.flag_releases("dynamo", "dynamo.frontend", "--enforce-disagg") or frozenset()
            honoured = exists - knowledge.deprecated_releases("dynamo", "dynamo.frontend", "--enforce-disagg")
            if knowledge.verdict(w.target, "dynamo", honoured) is True:
                yield ctx.finding(self, w.span, f"{w.name}: without --enforce-disagg the frontend falls back to aggregated serving, silently, when no prefill worker is alive",
                                  worker=w, assumed=ctx.assumed(w), fix=Fix("add --enforce-disagg (and alert on its errors)"))
