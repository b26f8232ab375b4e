from __future__ import annotations

from disagg.schemas import knowledge
from disagg.schemas.roles import flags_hidden

from ...finding import Fix, Severity
from ...registry import Rule


class DG604(Rule):
    """## What it does
    Reports a `dynamo.vllm` decode worker without `--disaggregation-mode decode` next to prefill workers, in the
    releases where such a worker registers as aggregated (1.3 on: `WorkerType.Aggregated` in dynamo/vllm, read from
    the wheels). Before 1.3 an unflagged worker served as the decode side. Where the release is unknown this is a note.

    ## Why is this bad?
    The prefill workers register as needing a decode partner and the decode worker registers as aggregated, so they
    are never paired: the model is not exposed (503 "Model not ready" with `/health` green, ai-dynamo/dynamo PR#13037)
    or prefill is never used.

    ## Example
    ```bash
    python -m dynamo.vllm --model m --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_both"}'
    python -m dynamo.vllm --model m --disaggregation-mode prefill --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_both"}'
    ```

    ## Use instead
    ```bash
    python -m dynamo.vllm --model m --disaggregation-mode decode --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_both"}'
    python -m dynamo.vllm --model m --disaggregation-mode prefill --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_both"}'
    ```
    """

    code = "DG604"
    name = "dynamo-decode-registers-aggregated"
    severity = Severity.ERROR
    also = {Severity.INFO: "when the file does not say whether its release is 1.3 or later, or arguments set at run time may carry the flag"}
    on_roles = True

    def check(self, ctx):
        agg = knowledge.pattern("dynamo", "vllm.unflagged_worker_registers_aggregated").releases
        seen = set()
        for pair in ctx.pairs:
            d = pair.decode
            if d.program != "dynamo.vllm" or id(d) in seen or "disaggregation-mode" in d.flags or "is-decode-worker" in d.flags \
                    or "disaggregation_mode" in d.settings:
                continue
            seen.add(id(d))
            verdict = knowledge.verdict(d.target, "dynamo", agg)
            if verdict is False:
                continue
            hidden = flags_hidden(d)
            sev = Severity.ERROR if verdict is True and not hidden else Severity.INFO
            what = "registers as aggregated" if verdict is True else \
                f"registers as aggregated in Dynamo 1.3 and later (whether that includes this file's release, {d.target.describe('dynamo')}, is not known)"
            what += f" (unless {hidden} and carries the flag)" if hidden else ""
            yield ctx.pair_finding(self, pair, d, d.span, f"{d.name} has no --disaggregation-mode decode and {what}: the prefill workers are never paired with it",
                                   severity=sev, assumed=ctx.assumed(d), roles=(pair.prefill,),
                                   fix=Fix("add --disaggregation-mode decode to the decode worker"))
