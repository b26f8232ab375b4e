"""The frontend's view of its workers: who is up, by health checks every quarter second.

A worker is up when it answers its health check and says it is healthy (its engine loop runs and makes progress
when work waits). A worker that stops answering or says it is unhealthy is marked down at once and gets no new
request. Its connection is dropped when it is gone (refused, closed) or has been down for ABANDON_AFTER seconds, so
that the requests it held fail then (and move to another worker where nothing was sent yet) instead of waiting for
their timeouts; a worker that is only slow to answer for a moment keeps its requests. A new process behind the same
worker id counts as a restart.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..backends import WorkerFailed
from ..plan import WorkerSpec

ABANDON_AFTER = 3.0  # seconds down (not answering, or unhealthy) before the requests a worker holds are failed over
GONE = ("connect", "disconnected", "auth")  # reasons that mean the worker process is not there at all


@dataclass
class WorkerState:
    spec: WorkerSpec
    up: bool = False
    pid: int | None = None
    device: str = "cpu"
    state: str = "starting"
    last_error: str | None = None
    inflight: int = 0
    requests: int = 0
    restarts: int = 0
    seen_up: bool = False
    down_since: float | None = None
    abandoned: bool = False

    @property
    def worker_id(self) -> str:
        return self.spec.worker_id

    @property
    def role(self) -> str:
        return self.spec.role

    def to_json(self) -> dict:
        return {
            "id": self.worker_id, "role": self.role, "pid": self.pid, "device": self.device, "address": f"{self.spec.host}:{self.spec.port}",
            "host": self.spec.host, "kv_address": self.spec.kv_address or self.spec.host,
            "up": self.up, "state": self.state, "last_error": self.last_error, "inflight": self.inflight, "requests": self.requests, "restarts": self.restarts,
        }


class NoDecodeWorker(Exception):
    pass


class WorkerPool:
    def __init__(self, specs: list[WorkerSpec], backend, metrics, router: str = "round-robin", on_change: Callable[[WorkerState], None] | None = None):
        self.workers = {s.worker_id: WorkerState(s) for s in specs}
        self.backend = backend
        self.metrics = metrics
        self.router = router
        self.on_change = on_change or (lambda w: None)
        self._rr = itertools.count()
        self.missing_hint = "see /workers"  # what a request without a worker of a role is told to check
        for w in self.workers.values():
            self._series(w)
        self._count()

    def _series(self, w: WorkerState) -> None:
        self.metrics.worker_up.labels(w.worker_id, w.role).set(0)
        self.metrics.worker_requests.labels(w.worker_id, w.role)
        self.metrics.worker_restarts.labels(w.worker_id, w.role)

    def _count(self) -> None:
        for role in ("decode", "prefill"):
            self.metrics.workers_known.labels(role).set(len(self.of_role(role)))

    def add(self, spec: WorkerSpec) -> None:
        """A worker that registered (or registered again: a new address means a new process)."""
        w = self.workers.get(spec.worker_id)
        if w is not None and w.spec == spec:
            return
        if w is not None:  # same id, new place: requests held by the old connection fail over now
            self.mark_down(w, "registered again at a new address", gone=True)
            w.spec = spec
            return
        w = self.workers[spec.worker_id] = WorkerState(spec)
        self._series(w)
        self._count()

    def remove(self, worker_id: str, why: str) -> None:
        """A worker whose registration is gone (its lease expired, or it left): no new requests, its requests fail over."""
        w = self.workers.get(worker_id)
        if w is None:
            return
        self.mark_down(w, why, gone=True)
        del self.workers[worker_id]
        for family in (self.metrics.worker_up, self.metrics.worker_requests, self.metrics.worker_restarts):
            try:
                family.remove(w.worker_id, w.role)
            except KeyError:
                pass
        self._drop_info(w)
        self._count()

    def _drop_info(self, w: WorkerState) -> None:
        """Remove the worker's disagg_worker_info series (labelled with its pid: one per process it has had)."""
        try:
            self.metrics.worker_info.remove(w.worker_id, w.role, str(w.pid), w.device)
        except KeyError:
            pass

    def of_role(self, role: str) -> list[WorkerState]:
        return [w for w in self.workers.values() if w.role == role]

    def any_up(self, role: str) -> bool:
        return any(w.up for w in self.workers.values() if w.role == role)

    async def monitor(self, interval: float = 0.25) -> None:
        while True:
            await asyncio.gather(*(self._check(w) for w in self.workers.values()))
            await asyncio.sleep(interval)

    async def _check(self, w: WorkerState) -> None:
        try:
            info = await self.backend.health(w)
        except WorkerFailed as exc:
            self.mark_down(w, f"health check failed: {exc.reason}", gone=exc.reason in GONE)
            return
        if info.get("healthy") is False:
            self.mark_down(w, f"unhealthy: {info.get('reason', '?')}")
        else:
            self.mark_up(w, info)

    def mark_up(self, w: WorkerState, info: dict) -> None:
        pid = info.get("pid")
        if w.pid is not None and pid != w.pid:
            w.restarts += 1
            self.metrics.worker_restarts.labels(w.worker_id, w.role).inc()
            self._drop_info(w)
        was_up = w.up
        w.pid, w.device, w.state, w.up, w.seen_up = pid, info.get("device", "cpu"), info.get("state", "ready"), True, True
        w.last_error, w.down_since, w.abandoned = info.get("reason") if w.state == "not_ready" else None, None, False  # why it takes no work now
        self.metrics.worker_info.labels(w.worker_id, w.role, str(pid), w.device).set(1)
        self.metrics.worker_up.labels(w.worker_id, w.role).set(1)
        if not was_up:
            self.on_change(w)

    def mark_down(self, w: WorkerState, why: str, gone: bool = True) -> None:
        was_up = w.up
        w.up, w.state, w.last_error = False, "down" if w.seen_up else "starting", why
        now = time.monotonic()
        if w.down_since is None:
            w.down_since = now
        self.metrics.worker_up.labels(w.worker_id, w.role).set(0)
        if not w.abandoned and (gone or now - w.down_since >= ABANDON_AFTER):
            w.abandoned = True
            self.backend.abort(w)  # its requests fail now; those that sent nothing yet go to another worker
        if was_up:
            self.on_change(w)

    def pick_decode(self, exclude: set[str]) -> WorkerState:
        up = [w for w in self.workers.values() if w.role == "decode" and w.up and w.worker_id not in exclude]
        if not up:
            raise NoDecodeWorker(f"no decode worker is up; {self.missing_hint}")
        if self.router == "random":
            return random.choice(up)
        if self.router in ("kv", "kv-load"):  # least loaded
            return min(up, key=lambda w: (w.inflight, w.requests))
        return up[next(self._rr) % len(up)]
