from __future__ import annotations

from disagg.schemas.routing import RoutingPolicy

from ...finding import Fix, Severity
from ...registry import Rule
from ...workload import predict
from .._facts import decode, max_model_len

REMOTE_SHARE_FLOOR = 0.05  # below this predicted share, disaggregation is as good as off


class DG102(Rule):
    """## What it does
    Reports a `max-local-prefill-length` that keeps (almost) every prefill on the decode worker when
    `conditional-disagg` is on: always when the threshold is at least `max-model-len`; with `--workload`, when the
    predicted share of remote prefills is below 5%. Also notes when the key is omitted and the default of 1000
    tokens applies.

    ## Why is this bad?
    With conditional disaggregation a request prefills remotely only when its uncached prompt is longer than
    `max-local-prefill-length`. A threshold above every real prompt silently turns disaggregation off: the prefill
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
    `--workload isl=200,osl=10[,prefix-hit=0.2]` or `--workload trace.jsonl` predicts the remote share with the
    routing rule (an empty prefill queue is assumed).
    """

    code = "DG102"
    name = "threshold-keeps-prefill-local"
    severity = Severity.WARNING

    def check(self, ctx):
        dec = decode(ctx)
        if dec is None or not dec.model.conditional_disagg:
            return
        threshold = dec.model.max_local_prefill_length
        explicit = dec.is_set("max-local-prefill-length")
        where = dec.path_of("max-local-prefill-length") if explicit else dec.path_of("conditional-disagg")
        at = "value" if explicit else "key"
        limit, _ = max_model_len(ctx)
        fix = Fix("lower max-local-prefill-length below your typical uncached prompt length")
        if limit is not None and threshold >= limit:
            yield ctx.finding(
                self, where,
                f"max-local-prefill-length {threshold}{'' if explicit else ' (the default)'} is not below max-model-len {limit}: "
                "no prompt can be longer, so no prefill ever goes remote",
                fix=fix, at=at, severity=Severity.ERROR,
            )
            return
        workload = ctx.options.workload
        if workload is not None:
            policy = RoutingPolicy(True, True, threshold, dec.model.max_prefill_queue_size)
            pred = predict(policy, workload, prefill_workers_alive=True)
            if pred.remote_share < REMOTE_SHARE_FLOOR:
                isls = sorted(r.isl for r in workload.requests)
                yield ctx.finding(
                    self, where,
                    f"with workload {workload.source} only {pred.remote_share:.0%} of requests would prefill remotely: "
                    f"max-local-prefill-length is {threshold}{'' if explicit else ' (the default)'} and the median prompt is {isls[len(isls) // 2]} tokens",
                    fix=fix, at=at, prediction=pred.to_dict(),
                )
            return
        if not explicit:
            yield ctx.finding(
                self, where,
                "max-local-prefill-length is not set, so the default 1000 applies: prompts of up to 1000 uncached "
                "tokens prefill on the decode worker",
                fix=Fix("set max-local-prefill-length explicitly (check it with --workload)"),
                severity=Severity.INFO,
            )
