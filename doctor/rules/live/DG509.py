from __future__ import annotations

from ...finding import Fix, Severity, count
from ...registry import Rule
from ._signals import CACHE_FACTOR, increase_everywhere, router_prefills

STATIC_CAUSES = ("DG201", "DG202")  # the config's own KV-connector findings, when a config is given


class DG509(Rule):
    """## What it does
    Compares what the router says with what the engines say over the window. The router's counters say requests
    were sent to prefill workers (disagg's `route="remote"`, Dynamo's prefill admissions, llm-d's
    `decision_type="prefill-decode"`), while the engines' counters say no prompt token's KV came by transfer
    (vLLM's `prompt_tokens_by_source{source="external_kv_transfer"}`, disagg's
    `disagg_prompt_tokens_total{source="kv_transfer"}` stay flat) while the engines computed prompt tokens
    themselves. The engines' own pages win over the frontend's (a disagg frontend counts the KV it asked for, its
    vLLM workers the KV they received). It reports both numbers. It says nothing when the engines' series is absent (not scraped, or a
    release without it: unknown is not zero), when fewer than 5 requests (`--min-requests`) went to prefill, when
    nothing was computed (a stall is DG506's), or when the engines read at least half as many prompt tokens from
    their prefix caches as they computed (a prompt the decode engine holds cached needs no transfer).

    ## Why is this bad?
    The prefill workers compute every prompt and the decode workers compute it again: twice the GPU work and a worse
    time to first token, with HTTP 200 everywhere. The usual cause is a decode engine with no KV connector or
    another one than the prefill side (kserve#5987, llm-d-router#1220), so the router's P/D is P-then-also-D.

    ## Example
    ```yaml
    # the router sends prompts to the prefill pool; the decode engine was started without a KV connector
    VllmWorker:
      remote-prefill: true
    PrefillWorker:
      kv-transfer-config: '{"kv_connector":"NixlConnector","kv_role":"kv_both"}'
    ```

    ## Use instead
    ```yaml
    VllmWorker:
      remote-prefill: true
      kv-transfer-config: '{"kv_connector":"NixlConnector","kv_role":"kv_both"}'
    PrefillWorker:
      kv-transfer-config: '{"kv_connector":"NixlConnector","kv_role":"kv_both"}'
    ```
    """

    code = "DG509"
    name = "pd-routed-without-kv-transfer"
    severity = Severity.ERROR
    live = True

    def check(self, ctx):
        w = ctx.window
        if len(w.snaps) < 2 or w.last.frontend_error:
            return
        router = router_prefills(ctx)
        if router is None:
            return
        total, prefilled, counter = router
        if prefilled < ctx.min_requests:
            return
        # The engines' own pages are the authority when they carry the counts (a disagg frontend counts the KV it
        # asked for, its vLLM workers the KV they received); else the target's page (a vLLM engine, or Prometheus).
        pages = "workers" if increase_everywhere(ctx, "prompt_tokens", "workers", source="kv_transfer") is not None else "frontend"
        transferred = increase_everywhere(ctx, "prompt_tokens", pages, source="kv_transfer")
        if transferred is None or transferred > 0:
            return  # the engines do not say (absent), or KV did arrive
        local = increase_everywhere(ctx, "prompt_tokens", pages, source="local_compute")
        cached = increase_everywhere(ctx, "prompt_tokens", pages, source="prefix_cache") or 0.0
        if not local:
            return  # nothing computed: requests are stuck (DG506), or the engines' page says nothing
        if local < CACHE_FACTOR * cached:
            return  # a decode engine holding the prompt in its prefix cache loads nothing remote: no contradiction shown
        evidence = {"window_s": round(w.span, 1), "router_counter": counter, "requests": int(total), "sent_to_prefill": int(prefilled),
                    "kv_transfer_prompt_tokens": 0, "local_compute_prompt_tokens": int(local), "prefix_cache_prompt_tokens": int(cached)}
        failures = sum(v for v in (increase_everywhere(ctx, "kv_failures"), increase_everywhere(ctx, "kv_recv_failures")) if v)
        message = (f"the router sent {count(prefilled, 'request')} to prefill workers in the last {w.span:.0f} s ({counter}), "
                   f"yet the engines received no prompt token's KV by transfer (0 tokens from KV transfer, {int(local)} computed locally)")
        if failures:
            evidence["kv_failures"] = int(failures)
            message += f"; {count(failures, 'KV transfer')} failed (DG503)"
        else:
            message += ": the decode side prefills every prompt again"
        static = [f for f in ctx.static if f.code in STATIC_CAUSES]
        if static:
            evidence["static"] = [f"{f.code} {f.path}:{f.line}" for f in static]
            message += f"; the config agrees: {static[0].code} at {static[0].path}:{static[0].line}"
        yield ctx.finding(
            self, message, path=ctx.decode_key("kv-transfer-config"),
            fix=Fix("give the decode engines the same KV connector as the prefill engines (kv_transfer_config on both sides), then check their logs for the handshake"),
            subject="kv_transfer", evidence=evidence, confidence=0.95 if static else 0.85,
        )
