from __future__ import annotations

from disagg.schemas import knowledge

from ...finding import Fix, Severity
from ...registry import Rule

_DYNAMO = ("dynamo.vllm", "dynamo.sglang", "dynamo.trtllm")


class DG601(Rule):
    """## What it does
    Reports Dynamo 1.x prefill and decode workers in one file that register in different Dynamo namespaces, or (in
    releases where the frontend pairs them by model, 1.0 on) under different served model names.

    ## Why is this bad?
    Workers find each other through discovery under their namespace and model name. A prefill worker registered
    elsewhere is never used: Dynamo 1.6.1 answered every request with 503 "not ready" here (a test run with its
    mock engine), and releases that fall back to aggregated serving leave the prefill GPUs idle.

    ## Example
    ```bash
    python -m dynamo.vllm --model Qwen/Qwen3-0.6B --served-model-name qwen --disaggregation-mode decode
    python -m dynamo.vllm --model Qwen/Qwen3-0.6B --served-model-name qwen-prefill --disaggregation-mode prefill
    ```

    ## Use instead
    ```bash
    python -m dynamo.vllm --model Qwen/Qwen3-0.6B --served-model-name qwen --disaggregation-mode decode
    python -m dynamo.vllm --model Qwen/Qwen3-0.6B --served-model-name qwen --disaggregation-mode prefill
    ```
    """

    code = "DG601"
    name = "dynamo-prefill-decode-unpaired"
    severity = Severity.ERROR
    on_roles = True

    def check(self, ctx):
        dyn = [w for w in ctx.deployment.workers if w.program in _DYNAMO and w.role in ("prefill", "decode")]
        decode = [w for w in dyn if w.role == "decode"]
        by_model = knowledge.versions_between("dynamo", "1.0.0", None)
        for p in (w for w in dyn if w.role == "prefill"):
            for d in decode[:1]:
                pn, dn = p.known("served_model_name") or p.known("model"), d.known("served_model_name") or d.known("model")
                if pn and dn and str(pn) != str(dn) and knowledge.verdict(p.target, "dynamo", by_model) is True:
                    where = p.where("served_model_name") if "served_model_name" in p.settings else p.where("model")
                    yield ctx.finding(self, where, f"{p.name} (prefill) registers as {pn!r} but {d.name} (decode) as {dn!r}: the frontend never pairs them",
                                      worker=p, related=(ctx.related(d, d.where("served_model_name"), "the decode worker"),), assumed=ctx.assumed(p), roles=(p, d),
                                      fix=Fix("use the same --served-model-name on prefill and decode workers"))
                ps, ds = p.settings.get("namespace"), d.settings.get("namespace")
                if ps is not None and ds is not None and ps.known and ds.known and str(ps.value) != str(ds.value):
                    yield ctx.finding(self, ps.span, f"{p.name} (prefill) is in namespace {ps.value!r} but {d.name} (decode) in {ds.value!r}: they never meet",
                                      worker=p, related=(ctx.related(d, ds.span, "the decode worker's namespace"),), roles=(p, d),
                                      fix=Fix("run prefill and decode workers in the same Dynamo namespace"))
