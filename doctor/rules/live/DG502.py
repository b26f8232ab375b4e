from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule
from ._signals import rounded, traffic

QUEUE_FULL_SHARE = 0.2  # above this share of requests turned away by a full queue, say so


class DG502(Rule):
    """## What it does
    Reports a running deployment where more than 20% of requests in the window were prefilled locally because the
    prefill queue was full (`max-prefill-queue-size` reached), while others did go remote.

    ## Why is this bad?
    Under load the decode workers quietly take prefill work back: exactly when disaggregation matters most, it
    turns itself off, and inter-token latency on the decode workers degrades. Dynamo v0's prefill workers ran batch
    size 1, so the default queue limit of 3 was reached quickly.

    ## Example
    ```yaml
    VllmWorker:
      remote-prefill: true
      conditional-disagg: true
      max-prefill-queue-size: 1
    PrefillWorker:
      ServiceArgs: {workers: 1}
    ```

    ## Use instead
    ```yaml
    VllmWorker:
      remote-prefill: true
      conditional-disagg: true
      max-prefill-queue-size: 8
    PrefillWorker:
      ServiceArgs: {workers: 4}
    ```
    """

    code = "DG502"
    name = "local-fallback-under-load"
    severity = Severity.WARNING
    live = True

    def check(self, ctx):
        total, remote, local = traffic(ctx)
        full = local.get("queue_full", 0.0)
        if total < ctx.min_requests or remote == 0 or full / total <= QUEUE_FULL_SHARE:
            return
        policy = ctx.policy()
        yield ctx.finding(
            self,
            f"{full / total:.0%} of requests in the last {ctx.window.span:.0f} s prefilled locally because the prefill queue was full "
            f"(max-prefill-queue-size {policy.max_prefill_queue_size if policy else '?'})",
            path=ctx.decode_key("max-prefill-queue-size"),
            fix=Fix("add prefill workers, or raise max-prefill-queue-size"),
            subject="queue_full", evidence={"requests": int(total), "remote": int(remote), "local_by_reason": rounded(local), "queue_full_share": round(full / total, 3)},
            confidence=round(min(1.0, full / total + 0.3), 2),
        )
