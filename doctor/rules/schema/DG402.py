from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule


class DG402(Rule):
    """## What it does
    Reports values of the wrong type, with the type expected: `remote-prefill: "yes"`,
    `max-local-prefill-length: ten`, a section that is not a mapping.

    ## Why is this bad?
    Dynamo turns each key into a command-line flag: `"yes"` for a switch becomes a stray argument the engine
    rejects at start-up, a non-numeric threshold crashes the worker, and a quoted `"true"` is not `true`. The
    worker restarts in a loop, or the key is dropped and its default silently applies.

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
        if ctx.parse is None:
            return
        for issue in ctx.parse.issues:
            if issue.kind == "wrong_type":
                yield ctx.finding(self, issue.path, issue.message, fix=Fix("write the value with the expected type"), at="value")
