from __future__ import annotations

from ...finding import Severity
from ...registry import Rule
from .._facts import decode


class DG103(Rule):
    """## What it does
    Reports `max-prefill-queue-size` of 0 or less while `conditional-disagg` is on.

    ## Why is this bad?
    A request goes to the prefill queue only while fewer than `max-prefill-queue-size` requests wait there
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
        dec = decode(ctx)
        if dec is None or not dec.model.conditional_disagg or not dec.is_set("max-prefill-queue-size"):
            return
        size = dec.model.max_prefill_queue_size
        if size <= 0:
            yield ctx.finding(
                self, dec.path_of("max-prefill-queue-size"),
                f"max-prefill-queue-size is {size}: the prefill queue always counts as full, so no request ever prefills remotely",
                fix=ctx.fix_set_key("VllmWorker", "max-prefill-queue-size", "3", "set max-prefill-queue-size to at least 1 (default 3)"),
                at="value",
            )
