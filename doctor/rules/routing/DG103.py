from __future__ import annotations

from ...finding import Severity
from ...registry import Rule
from .._helpers import routing_policy, v0_router


class DG103(Rule):
    """## What it does
    Reports `max-prefill-queue-size` of 0 or less while `conditional-disagg` is on.

    ## Why is this bad?
    A request prefills remotely only while fewer than `max-prefill-queue-size` prefill requests already wait
    (Dynamo checks `queue_size < max_prefill_queue_size`). With a limit of 0 the queue always counts as full, so
    every request prefills locally and the prefill workers never get work.

    ## Example
    ```yaml
    VllmWorker:
      remote-prefill: true
      conditional-disagg: true
      max-prefill-queue-size: 0
    ```

    ## Use instead
    ```yaml
    VllmWorker:
      remote-prefill: true
      conditional-disagg: true
      max-prefill-queue-size: 3
    ```
    """

    code = "DG103"
    name = "prefill-queue-never-admits"
    severity = Severity.ERROR

    def check(self, ctx):
        dec = v0_router(ctx.deployment)
        if dec is None or "max_prefill_queue_size" not in dec.settings:
            return
        policy = routing_policy(dec)
        if policy.conditional_disagg and policy.max_prefill_queue_size <= 0:
            yield ctx.finding(self, dec.where("max_prefill_queue_size"),
                              f"max-prefill-queue-size is {policy.max_prefill_queue_size}: the prefill queue always counts as full, so no request ever prefills remotely",
                              worker=dec, fix=ctx.fix_set_key(dec.section[0] if dec.section else None, "max-prefill-queue-size", "3", "set max-prefill-queue-size to at least 1 (default 3)"))
