from __future__ import annotations

from disagg.schemas.cmdline import flag_name

from ...finding import Severity
from ...registry import Rule
from .._helpers import connector_of, flag_bool, prefill_capacity, v0_decode


class DG101(Rule):
    """## What it does
    Reports a Dynamo v0 config that defines prefill workers while the decode worker (`VllmWorker`) does not set
    `remote-prefill: true`.

    ## Why is this bad?
    `remote-prefill` is the master switch of disaggregation. Without it the decode worker prefills every request
    itself and never puts anything on the prefill queue, so the `PrefillWorker` GPUs sit at 0% while the decode
    worker does all the work. Nothing fails and nothing is logged (ai-dynamo/dynamo#462; Dynamo v0.1.0 shipped
    `disagg_router.yaml` this way; the flag is read in examples/llm/utils/vllm.py `parse_vllm_args`).

    ## Example
    ```yaml
    VllmWorker:
      conditional-disagg: true
    PrefillWorker:
      ServiceArgs: {workers: 1}
    ```

    ## Use instead
    ```yaml
    VllmWorker:
      remote-prefill: true
      conditional-disagg: true
      max-local-prefill-length: 10
    PrefillWorker:
      ServiceArgs: {workers: 1}
    ```
    """

    code = "DG101"
    name = "remote-prefill-disabled"
    severity = Severity.ERROR

    def check(self, ctx):
        dec = v0_decode(ctx.deployment)
        workers, _, _ = prefill_capacity(ctx.deployment)
        written = dec.settings.get("remote_prefill") if dec is not None else None
        if written is not None and not written.known:
            return  # a value of the wrong type stops the worker (DG402): whether it would be on is not a question
        if dec is None or workers == 0 or flag_bool(dec, "remote_prefill"):
            return
        off = next((i for i in ctx.deployment.issues if i.kind == "false_dropped" and i.get("section") == "VllmWorker"
                    and flag_name(str(i.get("key"))) == "remote-prefill"), None)
        where = off.span if off is not None else dec.span
        how = "sets remote-prefill: false" if off is not None else "does not set remote-prefill: true"
        yield ctx.finding(
            self, where,
            f"VllmWorker {how}, so the {workers} PrefillWorker worker(s) will get 0% of requests: "
            "every prefill runs on the decode worker",
            worker=dec, assumed=ctx.assumed(dec), fix=self._fix(ctx, dec),
        )

    def _fix(self, ctx, dec):
        # With no KV connector on the decode worker, turning remote prefill on moves the failure (DG201): not safe.
        names, _ = connector_of(dec)
        if names:
            return ctx.fix_set_key("VllmWorker", "remote-prefill", "true", "set `remote-prefill: true` under VllmWorker")
        return ctx.fix_set_key("VllmWorker", "remote-prefill", "true", "set `remote-prefill: true` under VllmWorker, and a kv-transfer-config on both workers",
                               safe=False)
