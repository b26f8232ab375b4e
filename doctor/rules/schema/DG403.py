from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule


class DG403(Rule):
    """## What it does
    Reports a `common-configs` entry that names a key the `Common` section does not define.

    ## Why is this bad?
    Dynamo applies only the Common keys that exist (ServiceConfig.as_args), silently skipping the rest, so the
    service runs with the engine default instead of the value the author meant: a different block size or model on
    one worker, for instance. Dynamo's own v0.3.2 `examples/llm/benchmarks/disagg.yaml` has its PrefillWorker pull
    `gpu-memory-utilization`, which Common does not define.

    ## Example
    ```yaml
    Common:
      block-size: 64
    PrefillWorker:
      common-configs: [block-size, gpu-memory-utilization]
    ```

    ## Use instead
    ```yaml
    Common:
      block-size: 64
      gpu-memory-utilization: 0.95
    PrefillWorker:
      common-configs: [block-size, gpu-memory-utilization]
    ```
    """

    code = "DG403"
    name = "common-config-missing"
    severity = Severity.WARNING

    def check(self, ctx):
        for issue in ctx.deployment.issues:
            if issue.kind != "common_key_missing":
                continue
            service = issue.get("section")
            msg = f"{issue.message}: {service} runs with the engine default instead"
            if issue.suggestion:
                msg += f" (did you mean {issue.suggestion!r}?)"
            yield ctx.finding(self, issue.span, msg, fix=Fix("define the key in Common, or remove it from common-configs"))
