from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule
from .._facts import decode, prefill_capacity


class DG104(Rule):
    """## What it does
    Reports `remote-prefill: true` on the decode worker when no prefill worker can run: no `PrefillWorker`
    section, `workers: 0`, or `gpu: 0`.

    ## Why is this bad?
    A remote prefill is put on a queue that only prefill workers drain. With none, those requests wait forever:
    with `conditional-disagg: false` that is every request (a total hang); with conditional disaggregation it is
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
        dec = decode(ctx)
        if dec is None or not dec.model.remote_prefill:
            return
        workers, why = prefill_capacity(ctx)
        if workers:
            return
        if dec.model.conditional_disagg:
            impact = f"every prompt above max-local-prefill-length ({dec.model.max_local_prefill_length} tokens) will wait forever"
        else:
            impact = "with conditional-disagg off, every request will wait forever (a total hang)"
        yield ctx.finding(
            self, dec.path_of("remote-prefill"),
            f"remote-prefill is on but {why}: {impact} for a prefill worker that never comes",
            fix=Fix("add a PrefillWorker with at least one worker, or turn remote-prefill off"),
        )
