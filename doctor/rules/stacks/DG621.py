from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule


class DG621(Rule):
    """## What it does
    Checks llm-d's `EndpointPickerConfig`: a `prefix-based-pd-decider` `nonCachedTokens` (or the deprecated
    `pd-profile-handler` `threshold`) at or above the typical uncached prompt of `--workload`, a `prefill`
    scheduling profile without a prefill filter, and the deprecated `threshold` itself.

    ## Why is this bad?
    llm-d disaggregates a request only when its uncached prompt reaches `nonCachedTokens`: set above real prompts,
    no request is ever disaggregated and the prefill pods idle (the same failure as Dynamo's
    `max-local-prefill-length`). A prefill profile without a prefill filter can pick decode pods for prefill.

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
    `--workload` gives the prompt lengths to compare against.
    """

    code = "DG621"
    name = "llm-d-pd-threshold"
    severity = Severity.WARNING

    def check(self, ctx):
        dep = ctx.deployment
        if dep is None or not dep.router:
            return
        r = dep.router
        threshold = r.get("prefix-based-pd-decider.nonCachedTokens") or r.get("pd-profile-handler.threshold")
        if "pd-profile-handler.threshold" in r:
            yield ctx.finding_at(self, r["pd-profile-handler.threshold"][1], "pd-profile-handler threshold is deprecated: use prefix-based-pd-decider nonCachedTokens",
                                 fix=Fix("move the value to a prefix-based-pd-decider plugin's nonCachedTokens"), severity=Severity.INFO)
        wl = ctx.options.workload
        if threshold is not None and wl is not None:
            try:
                limit = int(threshold[0])
            except (TypeError, ValueError):
                limit = None
            if limit is not None:
                uncached = sorted(int(q.isl * (1 - q.prefix_hit)) for q in wl.requests)
                share = sum(1 for u in uncached if u >= limit) / len(uncached)
                if share < 0.05:
                    yield ctx.finding_at(self, threshold[1], f"with workload {wl.source} only {share:.0%} of requests reach nonCachedTokens {limit} (median uncached prompt {uncached[len(uncached) // 2]} tokens): "
                                         "almost nothing is disaggregated", fix=Fix("lower nonCachedTokens below your typical uncached prompt"))
        for key, (plugins, span) in r.items():
            if key.startswith("profile:") and "prefill" in key.lower() and not any("prefill" in str(p) and "filter" in str(p) for p in plugins):
                yield ctx.finding_at(self, span, f"scheduling profile {key[8:]!r} has no prefill filter: prefill can land on decode pods",
                                     fix=Fix("add a prefill-filter plugin to the prefill profile"), severity=Severity.ERROR)
