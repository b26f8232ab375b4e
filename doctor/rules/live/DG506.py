from __future__ import annotations

from ...finding import Fix, Severity, count
from ...registry import Rule
from ._signals import awaiting_kv, everywhere, in_flight_series, prefill_workers

STUCK_SECONDS = 10.0  # requests in flight with no progress for this long are stuck, not slow
# Requests waiting for remote KV while no KV arrives anywhere for this long are a stalled transfer. vLLM 0.34 itself
# calls a P2P write in progress for 20 s stalled (VLLM_P2P_TRANSFER_STALL_TIMEOUT_S, vllm/envs.py at v0.34.0).
KV_STALL_SECONDS = 20.0
KV_ARRIVALS = (("prompt_tokens", {"source": "kv_transfer"}), ("kv_bytes", {}))  # counters that move when KV arrives


class DG506(Rule):
    """## What it does
    Reports requests that are in flight (or waiting) with no progress for 10 seconds: no request finished and no
    token was streamed, while the frontend still holds them. It names where they wait when the metrics say so: a
    decode engine with requests waiting for remote KV (vLLM 0.32+'s `num_requests_kv_fetch_by_stage`, SGLang's
    decode transfer queue), a decode engine with requests waiting and none running, a prefill queue that does not
    drain, a worker that is down. It also reports requests whose KV transfer has been in progress for 20 seconds while
    no KV arrives anywhere (no prompt token by KV transfer, no KV byte), even when other requests still finish: the transfer
    is stalled, and vLLM keeps such requests waiting instead of failing them (llm-d#2433).

    ## Why is this bad?
    A wedged engine looks like silence: clients wait until their own timeouts, no new request arrives (a bounded
    client pool is full of waiting ones), and a dashboard of request rates reads "no traffic". The fix is on the
    server (restart the engine, find the hung prefill), not on the clients.

    ## Example
    ```yaml
    # 21 requests in flight, 0 running on the decode worker, nothing finished for 30 s:
    # the decode engine stopped scheduling (it died inside, or waits for KV that never comes)
    VllmWorker:
      remote-prefill: true
    ```

    ## Use instead
    ```yaml
    # the same config: restart the stuck worker and read its log; requests finish again
    VllmWorker:
      remote-prefill: true
    ```
    """

    code = "DG506"
    name = "requests-stuck"
    severity = Severity.ERROR
    live = True

    def check(self, ctx):
        stuck = list(self._stuck(ctx))
        yield from stuck
        if not stuck:
            yield from self._kv_stalled(ctx)

    def _kv_stalled(self, ctx):
        snaps = [s for s in ctx.window.snaps if not s.frontend_error]
        if len(snaps) < 2 or not awaiting_kv(snaps[-1]):
            return
        marks = {sig: everywhere(snaps[-1], sig, **lab) for sig, lab in KV_ARRIVALS}
        marks = {sig: v for sig, v in marks.items() if v is not None}
        if not marks:
            return  # arrivals we cannot see are not absent arrivals
        since = snaps[-1]
        for snap in reversed(snaps[:-1]):
            if not awaiting_kv(snap) or any(everywhere(snap, sig, **dict(KV_ARRIVALS)[sig]) != v for sig, v in marks.items()):
                break
            since = snap
        seconds = snaps[-1].t - since.t
        if seconds < KV_STALL_SECONDS:
            return
        waiting = int(awaiting_kv(snaps[-1]))
        evidence = {"waiting_for_kv": waiting, "seconds_without_kv": round(seconds, 1), **{f"{sig}_unchanged_at": v for sig, v in marks.items()}}
        yield ctx.finding(
            self, f"{count(waiting, 'request')} {'has' if waiting == 1 else 'have'} waited for remote KV for {seconds:.0f} s and no KV arrived anywhere "
            f"(no prompt token by KV transfer, no KV byte): the transfer from the prefill side is stalled",
            path=ctx.role_span("prefill"), fix=Fix("read the prefill worker's log (alive? its KV connector's handshake and transfers) and the decode worker's connector errors; restart the stuck prefill worker"),
            subject="kv_fetch", evidence=evidence, confidence=0.85,
        )

    def _stuck(self, ctx):
        inflight = dict(in_flight_series(ctx))
        snaps = [s for s in ctx.window.snaps if not s.frontend_error and s.t in inflight]
        if len(snaps) < 2 or not inflight[snaps[-1].t]:
            return
        # Walk back from the latest scrape while requests were in flight and no progress counter moved.
        marks = {sig: snaps[-1].total(sig) for sig in ("completed", "output_tokens")}
        marks = {sig: v for sig, v in marks.items() if v is not None}
        if not marks:
            return  # progress we cannot see is not absence of progress
        since = snaps[-1]
        for snap in reversed(snaps[:-1]):
            if not inflight[snap.t] or any(snap.total(sig) != v for sig, v in marks.items()):
                break
            since = snap
        if snaps[-1].t - since.t < STUCK_SECONDS:
            return
        last = snaps[-1]
        now = int(inflight[last.t])
        evidence = {"seconds_without_progress": round(last.t - since.t, 1), "in_flight": now, "finished": 0, "tokens_streamed": 0}
        where, path = "the frontend holds them", None
        decode = [wv for wv in last.workers if wv.role in ("decode", "aggregated")]
        stalled = []
        for wv in decode:
            running, waiting = last.worker_total(wv.worker_id, "running"), last.worker_total(wv.worker_id, "waiting")
            if running is not None and waiting is not None:
                evidence[f"{wv.worker_id}_running"], evidence[f"{wv.worker_id}_waiting"] = int(running), int(waiting)
                if running == 0 and waiting > 0:
                    stalled.append(wv.worker_id)
        down = [wv.worker_id for wv in last.workers if not wv.up]
        queue = last.total("queue_size")
        if queue:
            evidence["prefill_queue"] = int(queue)
        kv_wait = awaiting_kv(last)
        if kv_wait:
            evidence["waiting_for_kv"] = int(kv_wait)
        deferred = everywhere(last, "waiting_deferred")
        if deferred:
            evidence["waiting_deferred"] = int(deferred)
        in_prefill: dict[str, float] = {}  # Dynamo's frontend: requests now in a prefill-phase stage
        for lab, v in last.signals.get("stage_requests", ()):
            if lab.get("phase") == "prefill" and v:
                in_prefill[lab.get("stage", "?")] = in_prefill.get(lab.get("stage", "?"), 0.0) + v
        if in_prefill:
            evidence["frontend_prefill_stages"] = {k: int(v) for k, v in in_prefill.items()}
        if down:
            where = f"worker(s) {', '.join(down)} are down"
        elif kv_wait:
            where = f"{count(kv_wait, 'request')} wait{'s' if kv_wait == 1 else ''} on the decode side for KV that never arrives: the prefill side or the transfer hangs"
            path = ctx.role_span("prefill")
        elif in_prefill:
            where = (f"{count(sum(in_prefill.values()), 'request')} sit in the frontend's prefill phase "
                     f"({', '.join(f'{k}: {int(v)}' for k, v in in_prefill.items())}): the prefill step does not come back")
            path = ctx.role_span("prefill")
        elif stalled:
            where = f"decode worker(s) {', '.join(stalled)} hold waiting requests and run none: the engine stopped scheduling"
            path = ctx.role_span("decode")
        elif queue and prefill_workers(ctx)[1]:
            where = f"{int(queue)} remote prefill(s) wait in the queue and none finishes: the prefill worker hangs"
            path = ctx.role_span("prefill")
        elif (total := last.total("running")) is not None and total == 0:
            where = "the engine reports none of them running"
        if deferred and where.startswith(("decode worker(s)", "the engine")):
            where += f" ({int(deferred)} waiting deferred: for a KV transfer, a LoRA slot or a blocked status)"
        yield ctx.finding(
            self, f"{count(now, 'request')} in flight and none finished or streamed a token for {evidence['seconds_without_progress']:.0f} s: {where}",
            path=path, fix=Fix("read the stuck worker's log and restart it; clients are waiting on it"), subject="stuck", evidence=evidence, confidence=0.9,
        )
