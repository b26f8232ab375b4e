"""Window facts several live rules share."""

from __future__ import annotations

# DG501's causes, and the router reason each one shows up as. (Kept here, free of the live data layer, so that
# loading the rule registry on the static path stays cheap.)
CAUSES = ("remote_prefill_disabled", "below_threshold", "queue_full", "no_prefill_workers", "kv_transfer_failing", "no_traffic")
REASON_TO_CAUSE = {
    "disabled": "remote_prefill_disabled",
    "below_threshold": "below_threshold",
    "queue_full": "queue_full",
    "no_prefill_workers": "no_prefill_workers",
    "prefill_failed": "kv_transfer_failing",
    "kv_transfer_failed": "kv_transfer_failing",
}
# DG509: a decode engine loads remote KV only for what its own prefix cache lacks (vLLM 0.34's NIXL scheduler,
# nixl/pull_scheduler.py get_num_new_matched_tokens, counts the prompt minus the locally computed tokens), so a
# repeated prompt gets no transfer. "No KV arrived" is a contradiction only when the engines computed at least this
# many times the prompt tokens they read from their prefix caches (the live rule and its alert share it).
CACHE_FACTOR = 2.0
# DG507: two greedy answers that part between tokens within this many nats of each other (in either answer's own
# logprobs) may part from floating-point noise between batch shapes and kernels, not from wrong KV (vLLM's batch
# invariance page, docs.vllm.ai/en/stable/features/batch_invariance; vllm-project/vllm#966).
NEAR_TIE = 0.3


def traffic(ctx) -> tuple[float, float, dict[str, float]]:
    """(requests, remote requests, local requests by reason) over the window. Requests whose client chose the route
    (reason `override`, the canary's) say nothing about the routing policy and are left out."""
    w = ctx.window
    by_reason = w.by_label("requests", "reason")
    by_reason.pop("override", None)
    total = sum(by_reason.values())
    remote = by_reason.get("remote", 0.0)
    if total == 0 and w.last is not None and ("prefill_admissions" in w.last.signals or "failures" in w.last.signals):  # Dynamo 1.x
        remote = w.delta("prefill_admissions")
        decode = w.delta("decode_admissions")
        unavailable = w.delta("failures", reason="backend.unavailable")
        total = max(decode, remote) + unavailable
        by_reason = {"remote": remote, "decode_only": max(decode - remote, 0.0), "backend_unavailable": unavailable}
    local = {k: v for k, v in by_reason.items() if k != "remote" and v > 0}
    return total, remote, local


def prefill_workers(ctx) -> tuple[list, list]:
    """(prefill workers known, those up) in the latest snapshot."""
    last = ctx.window.last
    known = [w for w in (last.workers if last else ()) if w.role == "prefill"]
    return known, [w for w in known if w.up]


def prefill_utilisation(ctx) -> dict[str, tuple[float, str]]:
    """Worker id -> (busy %, source): NVML/DCGM/psutil readings, else the engine's own busy time."""
    last = ctx.window.last
    out = {}
    for w in prefill_workers(ctx)[0]:
        share = ctx.window.worker_busy_share(w.worker_id)
        reading = last.utilisation.get(w.worker_id) if last else None
        if reading is not None and reading.source in ("nvml", "dcgm"):
            out[w.worker_id] = (reading.percent, reading.source)
        elif share is not None:
            out[w.worker_id] = (share * 100, "engine busy time")
        elif reading is not None:
            out[w.worker_id] = (reading.percent, reading.source)
    return out


def rounded(d: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 2) for k, v in d.items()}


def dynamo_registration(ctx) -> dict | None:
    """What a Dynamo 1.x frontend shows about who registered: models, and router workers by type."""
    last = ctx.window.last
    if last is None or "models" not in last.signals:
        return None
    models = sorted({lab.get("model") for lab, _ in last.signals["models"] if lab.get("model")})
    registered: dict[str, float] = {}
    for lab, v in last.signals.get("registered", ()):
        registered[lab.get("worker_type", "?")] = registered.get(lab.get("worker_type", "?"), 0) + v
    return {"models": models, "router_workers": registered}


def in_flight_series(ctx) -> list[tuple[float, float]]:
    """(t, requests in flight) per snapshot: the frontend's gauge, else its engines' running plus waiting."""
    out = []
    for snap in ctx.window.snaps:
        if snap.frontend_error:
            continue
        v = snap.total("in_flight")
        if v is None:
            running, waiting = snap.total("running"), snap.total("waiting")
            if running is None and waiting is None:
                continue
            v = (running or 0.0) + (waiting or 0.0)
        out.append((snap.t, v))
    return out


def in_flight_now(ctx) -> float | None:
    series = in_flight_series(ctx)
    return series[-1][1] if series else None


def everywhere(snap, signal: str, pages: str = "all", **labels: str) -> float | None:
    """A signal summed over the frontend's page and every worker's own (None: no page carries it); `pages` "workers"
    or "frontend" reads only those. A vLLM engine scraped as the target shows its series on the frontend page; behind
    a disagg frontend, on its worker's."""
    values = [snap.total(signal, **labels)] if pages != "workers" else []
    if pages != "frontend":
        for rows in (sig.get(signal) for sig in snap.worker_signals.values()):
            if rows is not None:
                values.append(sum(v for lab, v in rows if all(lab.get(k) == want for k, want in labels.items())))
    values = [v for v in values if v is not None]
    return sum(values) if values else None


def increase_everywhere(ctx, signal: str, pages: str = "all", **labels: str) -> float | None:
    """Counter increase over the window of `everywhere(...)` (a reset counts from zero); None when no snapshot of the
    window carries the series: unknown, not zero."""
    prev, total, seen = None, 0.0, False
    for snap in ctx.window.snaps:
        if snap.frontend_error:
            continue
        v = everywhere(snap, signal, pages, **labels)
        if v is None:
            continue
        seen = True
        if prev is not None:
            total += v - prev if v >= prev else v
        prev = v
    return total if seen else None


def awaiting_kv(snap, stages: tuple[str, ...] = ("in_progress",)) -> float | None:
    """Requests on a decode engine whose KV transfer started and has not finished (vLLM's `kv_fetch` stage
    `in_progress`; SGLang's decode transfer queue, which has no stage); None when no page reports it. vLLM's
    `waiting_to_start` waits for the engine's own capacity as much as for the prefill side, so it is not counted."""
    if "kv_fetch" not in snap.signals and not any("kv_fetch" in sig for sig in snap.worker_signals.values()):
        return None
    rows = list(snap.signals.get("kv_fetch", ()))
    for sig in snap.worker_signals.values():
        rows.extend(sig.get("kv_fetch", ()))
    return sum(v for lab, v in rows if lab.get("stage", stages[0]) in stages)


def router_prefills(ctx) -> tuple[float, float, str] | None:
    """(requests routed, requests the router sent to a prefill worker, whose counter) over the window, from the
    router's own counters: disagg's `route`, Dynamo's prefill admissions, llm-d's P/D decisions. None: no router
    counter in sight."""
    from disagg.doctor.live.aliases import PREFILL_DECISIONS

    last = ctx.window.last
    if last is None:
        return None
    if "requests" in last.signals:
        total, remote, _ = traffic(ctx)
        return total, remote, "disagg_requests_total{route=\"remote\"}"
    if "prefill_admissions" in last.signals or "decode_admissions" in last.signals:
        total, remote, _ = traffic(ctx)
        return total, remote, "dynamo_frontend_router_admission_received_total{worker_type=\"prefill\"}"
    if "pd_decisions" in last.signals:
        by = ctx.window.by_label("pd_decisions", "decision_type")
        return sum(by.values()), sum(by.get(d, 0.0) for d in PREFILL_DECISIONS), "llm-d decision_type=\"prefill-decode\""
    return None
