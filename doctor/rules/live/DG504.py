from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule


class DG504(Rule):
    """## What it does
    Reports a worker of the running deployment that is down (fails its health check), and configured workers that
    never registered (the config asks for more `ServiceArgs.workers` than the frontend knows).

    ## Why is this bad?
    A missing prefill worker turns remote prefill into local prefill (or, in systems that queue for it, into waiting
    forever: vLLM's `WAITING_FOR_REMOTE_KVS`, llm-d#2433 "a hang instead of an error"); a missing decode worker
    halves capacity. Restart loops hide behind a healthy-looking frontend.

    ## Example
    ```yaml
    PrefillWorker:
      ServiceArgs: {workers: 2}   # one of them crash-loops
    ```

    ## Use instead
    ```yaml
    PrefillWorker:
      ServiceArgs: {workers: 2}   # both up: see `disagg top` or /workers
    ```
    """

    code = "DG504"
    name = "worker-down"
    severity = Severity.ERROR
    live = True

    def check(self, ctx):
        last = ctx.window.last
        if last is None:
            return
        for wv in last.workers:
            if not wv.up:
                yield ctx.finding(
                    self, f"{wv.role} worker {wv.worker_id}{f' on {wv.host}' if wv.host else ''} is down ({wv.last_error or 'no answer'}); restarts so far: {wv.restarts}",
                    path=ctx.role_span(wv.role), fix=Fix(f"look at {wv.worker_id}'s log; it is restarted with back-off"),
                    subject=wv.worker_id, evidence={"worker_id": wv.worker_id, "role": wv.role, "host": wv.host, "pid": wv.pid, "restarts": wv.restarts, "last_error": wv.last_error},
                    confidence=0.95,
                )
        for role in ("decode", "prefill"):
            expected = ctx.expected_workers(role)
            known = sum(1 for wv in last.workers if wv.role == role)
            if expected and last.workers and known < expected:
                yield ctx.finding(
                    self, f"the config asks for {expected} {role} worker(s) but the frontend knows {known}",
                    path=ctx.role_span(role), fix=Fix("check that every worker started and registered"),
                    subject=f"missing-{role}", evidence={"expected": expected, "registered": known}, confidence=0.9,
                )
