from __future__ import annotations

from ...finding import Edit, Fix, Severity
from ...registry import Rule


class DG603(Rule):
    """## What it does
    Reports the deprecated `--is-prefill-worker` flag of Dynamo's vLLM worker.

    ## Why is this bad?
    Dynamo 1.x replaced it with `--disaggregation-mode prefill`; deprecated flags are removed in later releases,
    and a worker that silently stops being a prefill worker after an upgrade turns disaggregation off.

    ## Example
    ```sh
    python -m dynamo.vllm --model m --is-prefill-worker
    ```

    ## Use instead
    ```sh
    python -m dynamo.vllm --model m --disaggregation-mode prefill
    ```
    """

    code = "DG603"
    name = "dynamo-deprecated-prefill-flag"
    severity = Severity.WARNING

    def check(self, ctx):
        if ctx.deployment is None:
            return
        for w in ctx.deployment.workers:
            if w.engine == "dynamo.vllm" and "is-prefill-worker" in w.flags:
                span = w.flags["is-prefill-worker"][1]
                yield ctx.finding_at(self, span, f"{w.name}: --is-prefill-worker is deprecated; use --disaggregation-mode prefill",
                                     fix=Fix("replace it with --disaggregation-mode prefill", (Edit("replace", span.line, span.column, span.end_line, span.end_column, "--disaggregation-mode prefill"),)))
