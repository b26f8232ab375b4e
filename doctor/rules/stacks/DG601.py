from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule


class DG601(Rule):
    """## What it does
    Reports Dynamo 1.x prefill and decode workers (`python -m dynamo.vllm --disaggregation-mode ...`) that
    register under different served model names or namespaces.

    ## Why is this bad?
    Dynamo's frontend pairs prefill and decode workers by model name within a namespace. Split across two names,
    the model never becomes ready with both halves: Dynamo 1.6.1 answered every request with 503
    "not ready" here (in a test run with its mock engine), and setups that fall back to aggregated serving
    leave the prefill GPUs idle while decode serves everything.

    ## Example
    ```sh
    python -m dynamo.vllm --model Qwen/Qwen3-0.6B --served-model-name qwen --disaggregation-mode decode
    python -m dynamo.vllm --model Qwen/Qwen3-0.6B --served-model-name qwen-prefill --disaggregation-mode prefill
    ```

    ## Use instead
    ```sh
    python -m dynamo.vllm --model Qwen/Qwen3-0.6B --served-model-name qwen --disaggregation-mode decode
    python -m dynamo.vllm --model Qwen/Qwen3-0.6B --served-model-name qwen --disaggregation-mode prefill
    ```
    """

    code = "DG601"
    name = "dynamo-prefill-decode-unpaired"
    severity = Severity.ERROR

    def check(self, ctx):
        if ctx.deployment is None:
            return
        dyn = [w for w in ctx.deployment.workers if w.engine == "dynamo.vllm" and w.role in ("prefill", "decode")]
        decode = [w for w in dyn if w.role == "decode"]
        for p in (w for w in dyn if w.role == "prefill"):
            for d in decode[:1]:
                pname, dname = p.get("served_model_name") or p.get("model"), d.get("served_model_name") or d.get("model")
                if pname and dname and str(pname) != str(dname):
                    where = p.where("served_model_name") if "served_model_name" in p.fields else p.where("model")
                    yield ctx.finding_at(self, where, f"{p.name} (prefill) registers as {pname!r} but {d.name} (decode) as {dname!r}: the frontend never pairs them",
                                         fix=Fix("use the same --served-model-name on prefill and decode workers"))
                pns, dns = p.get("namespace", "dynamo"), d.get("namespace", "dynamo")
                if str(pns) != str(dns):
                    yield ctx.finding_at(self, p.where("namespace"), f"{p.name} (prefill) is in namespace {pns!r} but {d.name} (decode) in {dns!r}: they never meet",
                                         fix=Fix("run prefill and decode workers in the same Dynamo namespace (DYN_NAMESPACE)"))
