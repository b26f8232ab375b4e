from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule
from .._facts import decode, prefill, value
from .._pairs import as_int, pairs


class DG204(Rule):
    """## What it does
    Reports a decode `tensor-parallel-size` that is not a multiple of the prefill worker's (in particular a prefill
    TP larger than the decode TP).

    ## Why is this bad?
    Each decode rank reads its KV heads from one or more prefill ranks; that mapping exists only when the decode TP
    is a multiple of the prefill TP. Otherwise the first transfer fails an assertion and the decode worker dies
    (ai-dynamo/dynamo#2295).

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

    def check(self, ctx):
        if ctx.deployment is not None:
            for d, p in pairs(ctx):
                dtp, ptp = as_int(d.get("tp"), 1), as_int(p.get("tp"), 1)
                if dtp and ptp and dtp > 0 and ptp > 0 and dtp % ptp:
                    yield ctx.finding_at(self, p.where("tp") if "tp" in p.fields else d.where("tp"),
                                         f"decode tensor parallel {dtp} ({d.name}) is not a multiple of prefill tensor parallel {ptp} ({p.name}): the first KV transfer will fail",
                                         fix=Fix("make the decode TP a multiple of the prefill TP"))
            return
        dec, pre = decode(ctx), prefill(ctx)
        if dec is None or pre is None:
            return
        dtp, ptp = value(dec, "tensor-parallel-size", 1), value(pre, "tensor-parallel-size", 1)
        if dtp <= 0 or ptp <= 0 or dtp % ptp == 0:
            return
        where = pre.path_of("tensor-parallel-size") if pre.is_set("tensor-parallel-size") else dec.path_of("tensor-parallel-size")
        yield ctx.finding(
            self, where,
            f"decode tensor-parallel-size {dtp} is not a multiple of prefill tensor-parallel-size {ptp}: "
            "the first KV transfer will fail",
            fix=Fix("make the decode TP a multiple of the prefill TP (prefill TP <= decode TP)"), at="value",
        )
