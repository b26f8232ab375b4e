from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule
from .._facts import decode, prefill, value
from .._pairs import known, pairs


class DG205(Rule):
    """## What it does
    Reports decode and prefill workers that serve different models (or served model names), and a Frontend
    `served_model_name` that matches neither.

    ## Why is this bad?
    Prefill requests are queued per model: a prefill worker of another model listens on another queue, so it stays
    idle while remote requests wait for nobody. Even when a transfer happens, KV of one model is garbage to
    another. A Frontend that advertises another name sends clients to a model no worker serves.

    ## Example
    ```yaml
    VllmWorker:
      model: meta-llama/Llama-3.1-8B-Instruct
    PrefillWorker:
      model: meta-llama/Llama-3.1-70B-Instruct
    ```

    ## Use instead
    ```yaml
    Common:
      model: meta-llama/Llama-3.1-8B-Instruct
    VllmWorker:
      common-configs: [model]
    PrefillWorker:
      common-configs: [model]
    ```
    """

    code = "DG205"
    name = "model-mismatch"
    severity = Severity.ERROR

    def check(self, ctx):
        if ctx.deployment is not None:
            for d, p in pairs(ctx):
                dm, pm = d.get("model"), p.get("model")
                if known(dm) and known(pm) and str(dm) != str(pm):
                    yield ctx.finding_at(self, p.where("model"), f"{p.name} (prefill) serves model {pm!r} but {d.name} (decode) serves {dm!r}: KV of one model is garbage to the other",
                                         fix=Fix("serve the same model on both instances"))
            return
        dec, pre = decode(ctx), prefill(ctx)
        if dec is None:
            return
        if pre is not None:
            for key in ("model", "served-model-name"):
                dv, pv = value(dec, key), value(pre, key)
                if dv is not None and pv is not None and dv != pv:
                    yield ctx.finding(
                        self, pre.path_of(key),
                        f"PrefillWorker {key} {pv!r} differs from VllmWorker {key} {dv!r}: the prefill worker will never receive this model's prefills",
                        fix=Fix(f"use the same {key} on both workers"), at="value",
                    )
        front = ctx.section("Frontend")
        name = value(front, "served_model_name")
        if front is not None and name is not None:
            served = value(dec, "served-model-name") or value(dec, "model")
            if served is not None and name not in (served, value(dec, "model")):
                yield ctx.finding(
                    self, front.path_of("served_model_name"),
                    f"Frontend served_model_name {name!r} is not the model the workers serve ({served!r}): requests will find no worker",
                    fix=Fix(f"set served_model_name to {served!r}"), at="value",
                )
