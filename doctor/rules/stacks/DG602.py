from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule


class DG602(Rule):
    """## What it does
    Notes a Dynamo 1.x frontend (`python -m dynamo.frontend`) serving disaggregated workers without
    `--enforce-disagg`.

    ## Why is this bad?
    When no prefill worker is alive, the frontend silently serves requests aggregated on the decode workers. That
    keeps the service up, but it is exactly the silent degradation this tool exists to expose: with
    `--enforce-disagg` a missing prefill worker becomes an error someone sees.

    ## Example
    ```sh
    python -m dynamo.frontend --http-port 8000 --router-mode kv
    ```

    ## Use instead
    ```sh
    python -m dynamo.frontend --http-port 8000 --router-mode kv --enforce-disagg
    ```
    """

    code = "DG602"
    name = "dynamo-silent-aggregated-fallback"
    severity = Severity.INFO

    def check(self, ctx):
        dep = ctx.deployment
        if dep is None or not dep.of_role("prefill"):
            return
        for w in dep.of_role("frontend"):
            if w.engine == "dynamo.frontend" and "enforce-disagg" not in w.flags:
                yield ctx.finding_at(self, w.span, f"{w.name}: without --enforce-disagg the frontend falls back to aggregated serving, silently, when no prefill worker is alive",
                                     fix=Fix("add --enforce-disagg (and alert on its errors)"))
