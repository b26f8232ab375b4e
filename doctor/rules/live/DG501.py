from __future__ import annotations

from ...finding import Fix, Severity, count
from ...registry import Rule
from ._signals import REASON_TO_CAUSE, dynamo_registration, in_flight_now, prefill_utilisation, prefill_workers, rounded, traffic


class DG501(Rule):
    """## What it does
    Watches a running deployment and reports when requests flow but none is prefilled remotely, and why: remote
    prefill disabled, prompts below the threshold, the prefill queue full, no prefill worker alive, KV transfers
    failing, or no traffic at all. The cause comes from the router's own reasons (`disagg_requests_total`),
    cross-checked with the config's static findings (DG101) and the observed prompt lengths. Zero remote prefills
    count once 5 requests (`--min-requests`) were seen in the window, or at once when `--probe`'s request, longer
    than the threshold, was itself prefilled locally: the probe is evidence on its own. Requests in flight are
    never "no traffic" (a stuck deployment is DG506), nor are requests that all failed (a worker down is DG504).

    ## Why is this bad?
    The prefill GPUs are paid for and idle, and the decode workers do the prefill work that disaggregation was meant
    to take off them, so time to first token and inter-token latency suffer under load. Nothing fails, so nothing
    alerts: the GPU utilisation graph at 0% is the only sign (ai-dynamo/dynamo#462).

    ## Example
    ```yaml
    # disagg doctor examples/seed-broken.yaml --live http://127.0.0.1:8000
    VllmWorker:
      conditional-disagg: true   # remote-prefill missing: every request is routed `disabled`
    ```

    ## Use instead
    ```yaml
    VllmWorker:
      remote-prefill: true
      conditional-disagg: true
      max-local-prefill-length: 10
    ```
    """

    code = "DG501"
    name = "prefill-traffic-zero"
    severity = Severity.ERROR
    also = {Severity.INFO: "no requests at all in the window (cause no_traffic)"}
    live = True

    def check(self, ctx):
        w = ctx.window
        if len(w.snaps) < 2 or w.last.frontend_error:
            return  # a deployment that stopped answering is DG508's verdict, not "no traffic"
        total, remote, local = traffic(ctx)
        probe = ctx.probe if ctx.probe and ctx.probe.get("route") == "local" and ctx.probe.get("reason") in REASON_TO_CAUSE else None
        if remote > 0:
            return
        if total == 0 and probe is None:
            if w.span >= 2.0 and not in_flight_now(ctx) and not w.delta("errors"):  # requests that all failed are traffic
                yield ctx.finding(self, f"no requests in the last {w.span:.0f} s: nothing to route, so prefill traffic is zero by default",
                                  severity=Severity.INFO, cause="no_traffic", fix=Fix("send traffic (e.g. `disagg load URL`) or check that clients reach this frontend"), evidence={"window_s": round(w.span, 1), "requests": 0}, confidence=0.3)
            return
        if total < ctx.min_requests and probe is None:
            return
        if probe is not None and not local:  # the probe ran before the window's first scrape
            total, local = total + 1, {probe["reason"]: 1.0}
        known, up = prefill_workers(ctx)
        policy = ctx.policy()
        evidence = {"window_s": round(w.span, 1), "requests": int(total), "remote": 0, "local_by_reason": rounded(local),
                    "prefill_workers": len(known), "prefill_workers_up": len(up)}
        if probe is not None:
            evidence["probe"] = f"{probe['prompt_tokens']}-token prompt prefilled locally, reason {probe['reason']}"
        isl50, isl95 = w.quantile("isl_bucket", 0.5), w.quantile("isl_bucket", 0.95)
        if isl50 is not None:  # estimates inside a histogram bucket: the bucket is given with them
            evidence["isl_p50"], evidence["isl_p95"] = round(isl50), round(isl95)
            evidence["isl_p50_bucket"] = [_num(b) for b in w.quantile_bounds("isl_bucket", 0.5)]
            evidence["isl_p95_bucket"] = [_num(b) for b in w.quantile_bounds("isl_bucket", 0.95)]
        util = prefill_utilisation(ctx)
        if util:
            evidence["prefill_utilisation_pct"] = {k: round(v, 1) for k, (v, _) in util.items()}
        dominant = max(local, key=local.get) if local else None
        if probe is not None and total < ctx.min_requests:
            dominant = probe["reason"]  # too few requests to weigh: the probe decides
        cause = REASON_TO_CAUSE.get(dominant, "no_prefill_workers")
        if known and not up:
            cause = "no_prefill_workers"
        share = local.get(dominant, 0.0) / total if dominant else 0.0
        path = None
        if cause == "remote_prefill_disabled":
            static = ctx.static_finding("DG101")
            if static:
                evidence["static_DG101"] = f"{static.path}:{static.line}:{static.column}"
            why = f"remote prefill is disabled: {int(local.get('disabled', 0))} of {count(total, 'request')} {'was' if int(total) == 1 else 'were'} routed `disabled`"
            if static:
                why += f" (the config agrees: DG101 at {static.path}:{static.line})"
            path, fix, confidence = ctx.decode_key("remote-prefill"), Fix("set `remote-prefill: true` under VllmWorker and restart"), min(1.0, share + (0.05 if static else 0))
        elif cause == "below_threshold":
            limit = policy.max_local_prefill_length if policy else None
            evidence["max_local_prefill_length"] = limit
            why = f"every prompt is at or below max-local-prefill-length ({limit} tokens)"
            if isl50 is not None:
                lo, hi = evidence["isl_p50_bucket"]
                why += f": observed prompt length p50 ~{isl50:.0f} (between {lo} and {hi}, a histogram estimate), p95 ~{isl95:.0f} tokens"
            path = ctx.decode_key("max-local-prefill-length")
            fix, confidence = Fix("lower max-local-prefill-length below your typical uncached prompt length"), share
        elif cause == "queue_full":
            evidence["max_prefill_queue_size"] = policy.max_prefill_queue_size if policy else None
            why = f"the prefill queue was full for every request (max-prefill-queue-size {evidence['max_prefill_queue_size']})"
            fix, confidence = Fix("add prefill workers or raise max-prefill-queue-size"), share
        elif cause == "kv_transfer_failing":
            why = "every remote prefill failed or its KV transfer failed, so each request fell back to a local prefill"
            fix, confidence = Fix("see DG503: check the prefill workers' logs and the KV connector on both sides"), share
        else:
            why = "no prefill worker is alive" if known else "no prefill worker is registered with the frontend"
            reg = dynamo_registration(ctx)
            if reg is not None:
                evidence.update(reg)
                if local.get("backend_unavailable"):
                    evidence["failed_backend_unavailable"] = int(local["backend_unavailable"])
                if not reg["router_workers"].get("prefill"):
                    why = f"no prefill worker is registered behind the router (router workers: {reg['router_workers'] or 'none'})"
                    if len(reg["models"]) > 1:
                        why += f"; the frontend knows {len(reg['models'])} models ({', '.join(reg['models'])}): prefill and decode workers registered under different model names never pair"
                    if local.get("backend_unavailable"):
                        why += f"; {count(local['backend_unavailable'], 'request')} failed `backend.unavailable` (model not ready)"
            if local.get("decode_only") and not local.get("backend_unavailable"):
                why = "the frontend routed every request to decode workers only: its prefill router never engaged (prefill workers missing, or registered under another model name or namespace)"
            fix, confidence = Fix("start prefill workers under the same model name and namespace as the decode workers"), max(share, 0.8)
        if probe is not None:
            confidence = max(confidence, 0.9)  # a request longer than the threshold was routed local: seen, not inferred
        yield ctx.finding(self, f"prefill traffic is zero: {count(total, 'request')} in the last {w.span:.0f} s, none prefilled remotely; cause: {why}",
                          path=path, fix=fix, cause=cause, evidence=evidence, confidence=round(confidence, 2))


def _num(b: float):
    """A bucket bound for the evidence: an int where it is one, "+Inf" for the last bucket."""
    return "+Inf" if b == float("inf") else (int(b) if float(b).is_integer() else b)
