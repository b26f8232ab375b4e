from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule


class DG402(Rule):
    """## What it does
    Reports values of the wrong type in a Dynamo v0 config, with the type expected: `remote-prefill: "yes"`,
    `max-local-prefill-length: ten`, a section that is not a mapping.

    ## Why is this bad?
    Every engine key becomes a command-line argument: `--remote-prefill yes` leaves a stray `yes` and
    `--max-local-prefill-length ten` is no integer, so the worker exits at start; a quoted `"true"` is not `true`.

    ## Example
    ```yaml
    VllmWorker:
      remote-prefill: "yes"
      max-local-prefill-length: ten
    ```

    ## Use instead
    ```yaml
    VllmWorker:
      remote-prefill: true
      max-local-prefill-length: 10
    ```
    """

    code = "DG402"
    name = "wrong-type"
    severity = Severity.ERROR

    def check(self, ctx):
        for issue in ctx.deployment.issues:
            if issue.kind == "wrong_type":
                yield ctx.finding(self, issue.span, issue.message, fix=Fix("write the value with the expected type"))
