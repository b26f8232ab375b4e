from __future__ import annotations

from disagg.schemas.cmdline import flag_name

from ...finding import Fix, Severity
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
        dec = v0_decode(ctx.deployment) or self._decode_that_writes_it(ctx.deployment)
        workers, _, _ = prefill_capacity(ctx.deployment)
        written = dec.settings.get("remote_prefill") if dec is not None else None
        if written is not None and not written.known:
            return  # a value of the wrong type stops the worker (DG402): whether it would be on is not a question
        if dec is None or workers == 0 or flag_bool(dec, "remote_prefill"):
            return
        section = dec.section[0] if dec.section else "VllmWorker"
        off = self._written_false(ctx.deployment, section)
        where = off.span if off is not None else dec.span
        how = "sets remote-prefill: false" if off is not None else "does not set remote-prefill: true"
        yield ctx.finding(
            self, where,
            f"{section} {how}, so the {workers} PrefillWorker worker(s) will get 0% of requests: "
            "every prefill runs on the decode worker",
            worker=dec, assumed=ctx.assumed(dec), fix=self._fix(ctx, dec, section),
        )

    @staticmethod
    def _written_false(dep, section: str):
        return next((i for i in dep.issues if i.kind == "false_dropped" and i.get("section") == section
                     and flag_name(str(i.get("key"))) == "remote-prefill"), None)

    @classmethod
    def _decode_that_writes_it(cls, dep):
        """A v0 decode section other than VllmWorker that writes remote-prefill (true or false): the multimodal graphs'
        `VllmDecodeWorker` reads it as VllmWorker does (`do_remote_prefill = engine_args.remote_prefill`,
        examples/multimodal/components/decode_worker.py in ai-dynamo/dynamo 0.2-0.3). A section that does not write it
        is not reported: what its component reads is not in the file."""
        for w in dep.workers:
            if w.program == "dynamo-v0:vllm" and w.role == "decode" and w.section and \
                    ("remote_prefill" in w.settings or cls._written_false(dep, w.section[0]) is not None):
                return w
        return None

    def _fix(self, ctx, dec, section: str = "VllmWorker"):
        # With no KV connector on the decode worker, turning remote prefill on moves the failure (DG201): not safe.
        names, _ = connector_of(dec)
        if dec.section is None:  # a v0 config inside a string (a DGD's DYN_DEPLOYMENT_CONFIG): nothing to edit in place
            return Fix(f"set `\"remote-prefill\": true` under {section} in the config string")
        if names:
            return ctx.fix_set_key(section, "remote-prefill", "true", f"set `remote-prefill: true` under {section}")
        return ctx.fix_set_key(section, "remote-prefill", "true", f"set `remote-prefill: true` under {section}, and a kv-transfer-config on both workers",
                               safe=False)
