from __future__ import annotations

from ...finding import Severity
from ...registry import Rule
from .._facts import decode

_IGNORED = ("max-local-prefill-length", "max-prefill-queue-size")


class DG105(Rule):
    """## What it does
    Reports `max-local-prefill-length` or `max-prefill-queue-size` set while `conditional-disagg` is off.

    ## Why is this bad?
    Both keys only take part in the conditional rule. With `conditional-disagg: false` every request goes remote
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
        dec = decode(ctx)
        if dec is None or dec.model.conditional_disagg:
            return
        for key in _IGNORED:
            if dec.is_set(key):
                yield ctx.finding(
                    self, dec.path_of(key),
                    f"{key} is ignored because conditional-disagg is off: "
                    + ("every request prefills remotely" if dec.model.remote_prefill else "remote prefill is off too"),
                    fix=ctx.fix_set_key("VllmWorker", "conditional-disagg", "true", "set `conditional-disagg: true`, or remove the key"),
                )
