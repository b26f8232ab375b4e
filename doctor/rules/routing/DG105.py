from __future__ import annotations

from ...finding import Severity
from ...registry import Rule
from .._helpers import routing_policy, v0_router

_IGNORED = (("max_local_prefill_length", "max-local-prefill-length"), ("max_prefill_queue_size", "max-prefill-queue-size"))


class DG105(Rule):
    """## What it does
    Reports `max-local-prefill-length` or `max-prefill-queue-size` set while `conditional-disagg` is off.

    ## Why is this bad?
    Both keys only take effect with conditional disaggregation. Without it every request prefills remotely
    (once `remote-prefill` is on) whatever they say, so a reader who tuned them is misled and short prompts that
    were meant to stay local pay the KV transfer.

    ## Example
    ```yaml
    VllmWorker:
      remote-prefill: true
      max-local-prefill-length: 512
    ```

    ## Use instead
    ```yaml
    VllmWorker:
      remote-prefill: true
      conditional-disagg: true
      max-local-prefill-length: 512
    ```
    """

    code = "DG105"
    name = "threshold-without-conditional"
    severity = Severity.WARNING

    def check(self, ctx):
        dec = v0_router(ctx.deployment)
        if dec is None:
            return
        policy = routing_policy(dec)
        if policy.conditional_disagg:
            return
        for key, flag in _IGNORED:
            if key in dec.settings:
                written = dec.flags.get(flag)
                yield ctx.finding(self, written.span if written is not None else dec.where(key), f"{flag} is ignored because conditional-disagg is off: "
                                  + ("every request prefills remotely" if policy.remote_prefill else "remote prefill is off too"), worker=dec,
                                  fix=ctx.fix_set_key(dec.section[0] if dec.section else None, "conditional-disagg", "true", "set `conditional-disagg: true`, or remove the key", safe=False))
