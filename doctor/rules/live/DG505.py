from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule
from ._signals import prefill_utilisation, traffic

IDLE_PCT = 2.0
BUSY_PCT = 20.0


class DG505(Rule):
    """## What it does
    Compares each prefill worker's utilisation (NVML per process, DCGM, or the engine's own busy time; CPU% where
    that is all there is) with what routing says it should be doing: idle (under 2%) while remote prefills are
    routed or queued, or busy (over 20%) while nothing is routed to it.

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
        if w.span < 2.0:
            return
        total, remote, _ = traffic(ctx)
        queued = max((s.total("queue_size") or 0.0) for s in w.snaps)
        for wid, (pct, source) in prefill_utilisation(ctx).items():
            if (remote > 0 or queued > 0) and pct < IDLE_PCT:
                yield ctx.finding(
                    self, f"prefill worker {wid} is {pct:.1f}% busy ({source}) while {remote:.0f} requests were routed remote and up to {queued:.0f} queued",
                    fix=Fix("check that the prefill worker's engine receives the queued requests"), subject=f"idle-{wid}",
                    evidence={"worker_id": wid, "utilisation_pct": round(pct, 1), "source": source, "remote_requests": int(remote), "max_queue": int(queued)}, confidence=0.6,
                )
            elif remote == 0 and queued == 0 and pct > BUSY_PCT:
                yield ctx.finding(
                    self, f"prefill worker {wid} is {pct:.0f}% busy ({source}) but no request was routed to it in the last {w.span:.0f} s",
                    fix=Fix("find what else runs on that GPU, or why the worker spins"), subject=f"busy-{wid}",
                    evidence={"worker_id": wid, "utilisation_pct": round(pct, 1), "source": source, "requests": int(total)}, confidence=0.5,
                )
