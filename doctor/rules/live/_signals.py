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


def traffic(ctx) -> tuple[float, float, dict[str, float]]:
    """(requests, remote requests, local requests by reason) over the window."""
    w = ctx.window
    by_reason = w.by_label("requests", "reason")
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
