from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule


class DG621(Rule):
    """## What it does
    Checks an llm-d scheduler config (EndpointPickerConfig, alone or inside gaie Helm values): with `--workload`, a
    `prefix-based-pd-decider` `nonCachedTokens` (or the older `pd-profile-handler` `threshold`) that almost no
    request reaches; and a scheduling profile named for prefill that has no prefill filter.

    ## Why is this bad?
    llm-d disaggregates a request only when its uncached prompt reaches `nonCachedTokens`: set above real prompts,
    no request is ever disaggregated and the prefill pods idle (the same failure as Dynamo's
    `max-local-prefill-length`). A profile picks among the pods its filters leave, so a prefill profile without
    `prefill-filter` can send prefill work to decode pods (llm-d-inference-scheduler deploy/config/pd-epp-config.yaml).

    ## Example
    ```yaml
    plugins:
      - type: prefix-based-pd-decider
        parameters: {nonCachedTokens: 4096}
    ```

    ## Use instead
    ```yaml
    plugins:
      - type: prefix-based-pd-decider
        parameters: {nonCachedTokens: 256}
    ```

    ## Options
    `--workload`: the prompt lengths to compare with the threshold.
    """

    code = "DG621"
    name = "llm-d-pd-threshold"
    severity = Severity.WARNING

    def check(self, ctx):
        r = ctx.deployment.router
        if not r:
            return
        threshold = r.get("prefix-based-pd-decider.nonCachedTokens") or r.get("pd-profile-handler.threshold")
        wl = ctx.options.workload
        if threshold is not None and threshold.known and wl is not None:
            try:
                limit = int(threshold.value)
            except (TypeError, ValueError):
                limit = None
            if limit is not None:
                uncached = sorted(int(q.isl * (1 - q.prefix_hit)) for q in wl.requests)
                share = sum(1 for u in uncached if u >= limit) / len(uncached)
                if share < 0.05:
                    yield ctx.finding(self, threshold.span, f"with workload {wl.source} only {share:.0%} of requests reach the disaggregation threshold {limit} "
                                      f"(median uncached prompt {uncached[len(uncached) // 2]} tokens): almost nothing is disaggregated",
                                      fix=Fix("lower nonCachedTokens below your typical uncached prompt"))
        for key, s in r.items():
            if key.startswith("profile:") and "prefill" in key.lower() and isinstance(s.value, list) and not any("prefill" in str(p) and "filter" in str(p) for p in s.value):
                yield ctx.finding(self, s.span, f"scheduling profile {key[8:]!r} has no prefill filter: prefill can land on decode pods",
                                  fix=Fix("add a prefill-filter plugin to the prefill profile"))
