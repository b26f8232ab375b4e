from __future__ import annotations

from ...finding import Fix, Severity, count
from ...registry import Rule
from ._signals import prefill_utilisation, traffic

IDLE_PCT = 2.0
BUSY_PCT = 20.0
MIN_SPAN_S = 10.0  # a verdict on utilisation needs this much watched time (and 5 scrapes)
MIN_ROUTED = 5  # requests routed to one worker before "they do not reach it" can be said


class DG505(Rule):
    """## What it does
    Compares each prefill worker's utilisation (NVML per process, DCGM, or the engine's own busy time; CPU% where
    that is all there is) with what routing says it should be doing: idle (under 2%) while remote prefills are
    routed or queued, or busy (over 20%) while nothing is routed to it. Light traffic keeps a healthy worker idle
    most of the time, so "idle" counts only with evidence that work waited for it: at least 5 requests routed to it
    that it did not serve (its own request counter), or remote prefills queued in 80% of the window's scrapes. Every
    verdict needs 10 s and 5 scrapes; the evidence states what was counted.

    ## Why is this bad?
    Idle while work is routed means the work is not reaching the worker (wrong queue, stuck transfer, a worker
    that registered but cannot compute); busy with nothing routed means the GPU is used by something else, or
    the worker is spinning. Either way the utilisation graph and the routing disagree, and capacity plans built
    on either are wrong.

    ## Example
    ```yaml
    # remote prefills are routed, but the prefill worker's GPU stays at 0%
    VllmWorker:
      remote-prefill: true
    ```

    ## Use instead
    ```yaml
    # the same config, with the prefill worker's engine actually receiving the queue's requests
    VllmWorker:
      remote-prefill: true
    ```
    """

    code = "DG505"
    name = "prefill-utilisation-mismatch"
    severity = Severity.WARNING
    live = True

    def check(self, ctx):
        w = ctx.window
        if w.span < MIN_SPAN_S or len(w.snaps) < 5:
            return
        total, remote, _ = traffic(ctx)
        queue = [q for q in (s.total("queue_size") for s in w.snaps if not s.frontend_error) if q is not None]
        queued_share = sum(1 for q in queue if q > 0) / len(queue) if queue else 0.0
        max_queue = max(queue, default=0.0)
        for wid, (pct, source) in prefill_utilisation(ctx).items():
            base = {"worker_id": wid, "utilisation_pct": round(pct, 1), "source": source, "window_s": round(w.span, 1), "scrapes": len(w.snaps)}
            if pct < IDLE_PCT:
                routed = w.delta("worker_requests", worker_id=wid) if w.last.total("worker_requests") is not None else None
                served = w.worker_delta(wid, "engine_requests")
                if routed is not None and served is not None and routed >= MIN_ROUTED and served < 0.1 * routed:
                    why = f"{count(routed, 'request')} {'was' if int(routed) == 1 else 'were'} routed to it in the last {w.span:.0f} s and it served {served:.0f}: the work does not reach its engine"
                    evidence = {**base, "routed_to_worker": int(routed), "served_by_worker": int(served)}
                elif queued_share >= 0.8 and max_queue >= 1:
                    why = f"remote prefills waited in the queue in {queued_share:.0%} of {len(queue)} scrapes (up to {max_queue:.0f}) while it stayed idle"
                    evidence = {**base, "queued_share": round(queued_share, 2), "max_queue": int(max_queue), "remote_requests": int(remote)}
                else:
                    continue  # idle and little to do: not significant
                yield ctx.finding(
                    self, f"prefill worker {wid} is {pct:.1f}% busy ({source}) while {why}",
                    fix=Fix("check that the prefill worker's engine receives the queued requests"), subject=f"idle-{wid}", evidence=evidence, confidence=0.7,
                )
            elif remote == 0 and max_queue == 0 and pct > BUSY_PCT:
                yield ctx.finding(
                    self, f"prefill worker {wid} is {pct:.0f}% busy ({source}) but no request was routed to it in the last {w.span:.0f} s",
                    fix=Fix("find what else runs on that GPU, or why the worker spins"), subject=f"busy-{wid}",
                    evidence={**base, "requests": int(total)}, confidence=0.5,
                )
