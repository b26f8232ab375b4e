from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule
from .._helpers import prefill_capacity, routing_policy, v0_router


class DG104(Rule):
    """## What it does
    Reports `remote-prefill: true` on the decode worker when no prefill worker can run: no `PrefillWorker`
    section, `workers: 0`, or `gpu: 0`.

    ## Why is this bad?
    Requests chosen for remote prefill wait on the prefill queue for a worker that never comes. With
    `conditional-disagg: false` that is every request (a total hang); with conditional disaggregation it is
    every prompt above the threshold.

    ## Example
    ```yaml
    VllmWorker:
      remote-prefill: true
    PrefillWorker:
      ServiceArgs: {workers: 0}
    ```

    ## Use instead
    ```yaml
    VllmWorker:
      remote-prefill: true
    PrefillWorker:
      ServiceArgs: {workers: 1}
    ```
    """

    code = "DG104"
    name = "no-prefill-worker"
    severity = Severity.ERROR

    def check(self, ctx):
        dec = v0_router(ctx.deployment)
        if dec is None:
            return
        policy = routing_policy(dec)
        if not policy.remote_prefill:
            return
        workers, why, _ = prefill_capacity(ctx.deployment)
        if workers:
            return
        if policy.conditional_disagg:
            impact = f"every prompt above max-local-prefill-length ({policy.max_local_prefill_length} tokens) will wait forever"
        else:
            impact = "with conditional-disagg off, every request will wait forever (a total hang)"
        yield ctx.finding(self, dec.where("remote_prefill"), f"remote-prefill is on but {why}: {impact} for a prefill worker that never comes",
                          worker=dec, fix=Fix("add a PrefillWorker with at least one worker, or turn remote-prefill off"))
