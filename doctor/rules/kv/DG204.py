from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule
from .._connectors import is_nixl
from .._helpers import as_int, connector_of, default_nixl_where_prefill_starts, or_default


class DG204(Rule):
    """## What it does
    Reports a vLLM prefill/decode pair that moves KV with NIXL (vLLM's `NixlConnector` or Dynamo's patched
    `DynamoNixlConnector`, by the class the release's connector factory loads) whose decode `tensor-parallel-size`
    is not a multiple of the prefill's (in particular a prefill TP larger than the decode TP). Other connectors map
    ranks their own way (vllm-ascend's Mooncake connector gathers a decode rank from several prefill ranks; forks'
    PyNccl connectors carry a TP multiplier): this rule says nothing about them. Two `dynamo.vllm` workers that state no
    connector count as NIXL where the Dynamo release is unknown but every candidate either gives them its default
    NixlConnector (0.4.0-0.9.1) or refuses to start the prefill worker without `--kv-transfer-config` (1.0.0 on).

    ## Why is this bad?
    Each decode rank reads its share of the KV heads from one prefill rank: NixlConnector computes
    `tp_ratio = divide(decode_tp, prefill_tp)` at the handshake and asserts "Decode TP cannot be smaller than prefill
    TP" (vllm-project/vllm#18833, vLLM 0.9.1; the same assertion in Dynamo's connector, ai-dynamo/dynamo#2295).
    The first transfer fails and the decode worker dies.

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
            assumed = "" if self._nixl_both(d, p) else default_nixl_where_prefill_starts(d, p)
            if assumed is None:
                continue
            dtp, ptp = as_int(or_default(d, "tp", 1)), as_int(or_default(p, "tp", 1))
            if dtp and ptp and dtp > 0 and ptp > 0 and dtp % ptp:
                at = p if "tp" in p.settings else d
                yield ctx.pair_finding(self, pair, at, at.where("tp"),
                                       f"decode tensor parallel {dtp} ({d.name}) is not a multiple of prefill tensor parallel {ptp} ({p.name}): the NIXL connector asserts it at the first handshake "
                                       "and the KV transfer fails (vllm-project/vllm#18833, ai-dynamo/dynamo#2295)" + (f"; connector: {assumed}" if assumed else ""),
                                       other_key="tp", fix=Fix("make the decode TP a multiple of the prefill TP (prefill TP <= decode TP)"))

    @staticmethod
    def _nixl_both(d, p) -> bool:
        """Both ends load a NIXL connector class in the release they target (unknown or another connector: not this rule)."""
        return all(is_nixl(w, connector_of(w)[0] or None) is True for w in (d, p))
