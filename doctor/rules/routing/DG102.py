from __future__ import annotations

from disagg.schemas.routing import RoutingPolicy

from ...finding import Fix, Severity
from ...registry import Rule
from ...workload import predict
from .._helpers import as_int, routing_policy, v0_router

REMOTE_SHARE_FLOOR = 0.05  # below this predicted share, disaggregation is as good as off


class DG102(Rule):
    """## What it does
    Reports a `max-local-prefill-length` that keeps (almost) every prefill on the decode worker when
    `conditional-disagg` is on: always when the threshold is at least `max-model-len`; with `--workload`, when the
    predicted share of remote prefills is below 5%. Also notes when the key is omitted and the default of 1000
    tokens applies.

    ## Why is this bad?
    With conditional disaggregation only prompts longer than the threshold (in uncached tokens) go remote. A
    threshold at or above the longest possible prompt, or above every real prompt, leaves the prefill
    workers idle exactly as if `remote-prefill` were missing. The default (1000) is above many chat prompts: the
    seed case (input length 200) sent nothing remote until the threshold was lowered to 10.

    ## Example
    ```yaml
    VllmWorker:
      remote-prefill: true
      conditional-disagg: true
      max-model-len: 4096
      max-local-prefill-length: 8192
    ```

    ## Use instead
    ```yaml
    VllmWorker:
      remote-prefill: true
      conditional-disagg: true
      max-model-len: 4096
      max-local-prefill-length: 512
    ```

    ## Options
    `--workload isl=N,osl=M[,prefix-hit=R]` or a JSON-lines trace: predicts the remote share with the runtime's
    routing rule (an empty prefill queue is assumed).
    """

    code = "DG102"
    name = "threshold-keeps-prefill-local"
    severity = Severity.WARNING
    also = {Severity.ERROR: "when max-local-prefill-length is at least max-model-len", Severity.INFO: "when the key is omitted and the default 1000 applies"}

    def check(self, ctx):
        dec = v0_router(ctx.deployment)
        if dec is None:
            return
        policy = routing_policy(dec)
        if not policy.conditional_disagg:
            return  # (judged as if remote-prefill were on: once DG101 is fixed, the threshold decides)
        threshold = policy.max_local_prefill_length
        written = dec.settings.get("max_local_prefill_length")
        where = written.span if written is not None else dec.where("conditional_disagg")
        default = "" if written is not None else " (the default)"
        limit = as_int(dec.known("max_model_len"))
        if limit is None:  # the Processor rejects longer requests before they reach the worker
            limit = next((as_int(w.known("max_model_len")) for w in ctx.deployment.of_role("router") if as_int(w.known("max_model_len"))), None)
        fix = Fix("lower max-local-prefill-length below your typical uncached prompt length")
        if limit is not None and threshold >= limit:
            yield ctx.finding(self, where, f"max-local-prefill-length {threshold}{default} is not below max-model-len {limit}: "
                              "no prompt can be longer, so no prefill ever goes remote", worker=dec, fix=fix, severity=Severity.ERROR)
            return
        workload = ctx.options.workload
        if workload is not None:
            pred = predict(RoutingPolicy(True, True, threshold, policy.max_prefill_queue_size), workload, prefill_workers_alive=True)
            if pred.remote_share < REMOTE_SHARE_FLOOR:
                isls = sorted(r.isl for r in workload.requests)
                yield ctx.finding(self, where, f"with workload {workload.source} only {pred.remote_share:.0%} of requests would prefill remotely: "
                                  f"max-local-prefill-length is {threshold}{default} and the median prompt is {isls[len(isls) // 2]} tokens",
                                  worker=dec, fix=fix, prediction=pred.to_dict())
            return
        if written is None:
            yield ctx.finding(self, where, "max-local-prefill-length is not set, so the default 1000 applies: prompts of up to 1000 uncached "
                              "tokens prefill on the decode worker", worker=dec,
                              fix=Fix("set max-local-prefill-length explicitly (check it with --workload)"), severity=Severity.INFO)
