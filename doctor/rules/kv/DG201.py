from __future__ import annotations

from disagg.schemas import knowledge

from ...finding import Fix, Severity
from ...registry import Rule
from .._helpers import connector_of, dynamo_patch_within, flag_bool, v0_decode


class DG201(Rule):
    """## What it does
    Reports a prefill/decode pair where one side has a KV connector and the other has none, a Dynamo v0 config
    with remote prefill on and no connector on either worker, and a `dynamo.vllm` pair whose workers both say
    `--connector null` (or `none`): in Dynamo 0.5-0.9 that builds no KV connector at all. The connector is what the worker really runs with:
    its `kv-transfer-config`, or the default its launcher adds in the release the file targets (Dynamo's
    `dynamo.vllm` gave every worker a NixlConnector in 0.4-0.9; since 1.0 it adds none).

    ## Why is this bad?
    Both engines need the KV connector: the prefill side to expose its blocks, the decode side to read them. A
    decode worker without one ignores the transfer parameters and recomputes every prompt, silently; a Dynamo
    1.x prefill worker without one fails at start. With no connector on either side, the prefill worker's result
    carries no transfer parameters and the decode worker computes every prompt again: the prefill work is wasted.

    ## Example
    ```yaml
    VllmWorker:
      remote-prefill: true
    PrefillWorker:
      kv-transfer-config: '{"kv_connector":"DynamoNixlConnector"}'
    ```

    ## Use instead
    ```yaml
    VllmWorker:
      remote-prefill: true
      kv-transfer-config: '{"kv_connector":"DynamoNixlConnector"}'
    PrefillWorker:
      kv-transfer-config: '{"kv_connector":"DynamoNixlConnector"}'
    ```
    """

    code = "DG201"
    name = "kv-connector-one-side"
    severity = Severity.ERROR
    on_roles = True

    def check(self, ctx):
        seen = set()
        for pair in ctx.pairs:
            d, p = pair.decode, pair.prefill
            if d.engine == "sglang":
                continue  # SGLang moves KV with its transfer backend (DG611)
            dc, dwhy = connector_of(d)
            pc, pwhy = connector_of(p)
            if dc is None or pc is None:
                continue
            if not pc and not dc and id(d) not in seen and (why := _dynamo_none_both(d, p)):
                seen.add(id(d))
                yield ctx.pair_finding(self, pair, d, d.where("connector"), f"neither {p.name} (prefill) nor {d.name} (decode) has a KV connector "
                                       f"(--connector {d.known('connector')} on the decode worker, --connector {p.known('connector')} on the prefill worker): {why}",
                                       fix=Fix("drop --connector null/none from both workers (0.5-0.9 then give each a NixlConnector), or give both the same "
                                               "--kv-transfer-config"), assumed=ctx.assumed(d))
                continue
            if pc and not dc and id(d) not in seen:
                seen.add(id(d))
                yield ctx.pair_finding(self, pair, d, d.span, f"{p.name} (prefill) has KV connector {', '.join(sorted(pc))} ({pwhy}) but {d.name} (decode) "
                                       f"has none ({dwhy}): prefilled blocks are never read and the decode worker recomputes every prompt",
                                       fix=Fix("give the decode worker the same kv-transfer-config"), assumed=ctx.assumed(d))
            elif dc and not pc and id(p) not in seen:
                seen.add(id(p))
                rejected = p.program == "dynamo.vllm" and knowledge.verdict(p.target, "dynamo", knowledge.pattern("dynamo", "vllm.connector_flag_rejected").releases) is True
                impact = "the prefill worker fails at start (dynamo.vllm requires --kv-transfer-config for --disaggregation-mode prefill)" if rejected \
                    else "no KV can reach the decode worker"
                yield ctx.pair_finding(self, pair, p, p.span, f"{d.name} (decode) has KV connector {', '.join(sorted(dc))} ({dwhy}) but {p.name} (prefill) "
                                       f"has none ({pwhy}): {impact}", fix=Fix("give the prefill worker the same kv-transfer-config"), assumed=ctx.assumed(p))
        dec = v0_decode(ctx.deployment)
        if dec is not None and flag_bool(dec, "remote_prefill"):
            pre = [p for p in ctx.pairs if p.decode is dec]
            if pre and all(connector_of(w)[0] == set() for pair in pre for w in pair.ends()):
                yield ctx.finding(self, dec.where("remote_prefill"), "remote-prefill is on but neither worker sets kv-transfer-config: the KV cache has no way to move",
                                  worker=dec, fix=Fix("set kv-transfer-config (e.g. '{\"kv_connector\":\"DynamoNixlConnector\"}') on both workers"))


def _dynamo_none_both(d, p) -> str | None:
    """What a dynamo.vllm pair whose workers both say `--connector null` or `none` (and no --kv-transfer-config) does,
    where every candidate release of both says the same: 0.5.0..0.9.1 build no kv-transfer-config for them (fact
    dynamo.vllm.connector_flag_values), and from 1.0.0 --connector makes dynamo.vllm raise at start (pattern
    vllm.connector_flag_rejected). None where either worker does not state it or a candidate release is neither."""
    if not all(w.program == "dynamo.vllm" and "connector" in w.settings and "kv_transfer_config" not in w.settings for w in (d, p)):
        return None
    none = knowledge.fact("dynamo.vllm.connector_flag_values").releases
    rejected = knowledge.pattern("dynamo", "vllm.connector_flag_rejected").releases
    if all(knowledge.verdict(w.target, "dynamo", none) is True or dynamo_patch_within(w, none) for w in (d, p)):
        where = d.target.describe("dynamo") if knowledge.verdict(d.target, "dynamo", none) is True else \
            f"Dynamo {d.settings['dynamo_image_release'].value} ({d.settings['dynamo_image_release'].origin}, a patch of a release in 0.5.0..0.9.1)"
        return (f"{where} builds no kv-transfer-config for --connector null/none, so the prefill worker's result carries "
                "no kv_transfer_params and the decode worker computes every prompt again: the prefill work is thrown away "
                f"[{knowledge.fact('dynamo.vllm.connector_flag_values').source}]")
    if all(knowledge.verdict(w.target, "dynamo", none | rejected) is True for w in (d, p)):
        return (f"in {d.target.describe('dynamo')}, either the release is 0.5.0..0.9.1, which builds no kv-transfer-config for --connector "
                "null/none (the decode worker computes every prompt again), or 1.0.0 or later, where --connector makes dynamo.vllm raise at start "
                "[fact dynamo.vllm.connector_flag_values; pattern vllm.connector_flag_rejected]")
    return None
