from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule
from .._helpers import as_int


class DG204(Rule):
    """## What it does
    Reports a vLLM prefill/decode pair whose decode `tensor-parallel-size` is not a multiple of the prefill's (in
    particular a prefill TP larger than the decode TP).

    ## Why is this bad?
    Each decode rank reads its share of the KV heads from the prefill ranks; vLLM's NIXL path supports it when the
    decode TP is a multiple of the prefill TP. Otherwise the first transfer fails an assertion and the decode worker
    dies (ai-dynamo/dynamo#2295).

    ## Example
    ```yaml
    VllmWorker:
      tensor-parallel-size: 1
    PrefillWorker:
      tensor-parallel-size: 2
    ```

    ## Use instead
    ```yaml
    VllmWorker:
      tensor-parallel-size: 2
    PrefillWorker:
      tensor-parallel-size: 1
    ```
    """

    code = "DG204"
    name = "tensor-parallel-ratio"
    severity = Severity.ERROR
    on_roles = True

    def check(self, ctx):
        for pair in ctx.pairs:
            d, p = pair.decode, pair.prefill
            if d.engine != "vllm" or p.engine != "vllm":
                continue
            dtp, ptp = as_int(d.value("tp", 1)), as_int(p.value("tp", 1))
            if dtp and ptp and dtp > 0 and ptp > 0 and dtp % ptp:
                at = p if "tp" in p.settings else d
                yield ctx.pair_finding(self, pair, at, at.where("tp"),
                                       f"decode tensor parallel {dtp} ({d.name}) is not a multiple of prefill tensor parallel {ptp} ({p.name}): the first KV transfer will fail",
                                       other_key="tp", fix=Fix("make the decode TP a multiple of the prefill TP (prefill TP <= decode TP)"))
