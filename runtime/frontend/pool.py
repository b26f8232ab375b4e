"""The frontend's view of its workers: who is up, by health checks every quarter second.

A worker is up when it answers its health check and says it is healthy (its engine loop runs and makes progress
when work waits). It is marked down on evidence: its connection closed or refused, it says it is unhealthy, or it
missed MISSES_DOWN checks in a row. One slow answer under load is not evidence: the worker stays up, but while a
check is overdue (or the last one missed) a decode worker gets new requests only when no other is up. Its
connection is dropped when it is gone (refused, closed) or has been down for ABANDON_AFTER seconds, so that the
requests it held fail then (and move to another worker where nothing was sent yet) instead of waiting for their
timeouts. A new process behind the same worker id counts as a restart.

Across hosts (membership.py) a worker is known by its registration's full etcd key. A registration of a known id at
another address is a candidate, not a move: the worker moves only once it answers there, on a handshake bound to that
id and address (backend.prove). A worker whose key disappears stays while it answers, for UNREGISTERED_GRACE seconds
(etcd restarted empty, or someone deleted the key: the worker registers again within seconds), and goes at once when
it does not answer. Until its first pass over the workers, a new frontend holds requests (up to HOLD_AT_START seconds)
instead of answering 503 for workers it has not checked yet.
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
GONE = ("connect", "disconnected", "auth", "protocol")  # reasons that mean the worker process is not there (or not ours)
MISSES_DOWN = 3  # health checks missed in a row (timeouts) before a worker that is still connected is marked down
SUSPECT_AFTER = 0.5  # seconds a health check may be outstanding before new requests prefer other decode workers
UNREGISTERED_GRACE = 15.0  # seconds a worker that still answers is kept after its etcd key disappeared
HOLD_AT_START = 5.0  # seconds a request waits for the first pass over the workers instead of a 503


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
    key: str | None = None  # the etcd key it is registered by (multi-host)
    unregistered_since: float | None = None  # its key disappeared; kept while it answers, for UNREGISTERED_GRACE
    candidate: tuple[WorkerSpec, str | None] | None = None  # a registration at a new address, not proven yet
    misses: int = 0  # health checks missed in a row
    told: WorkerSpec | None = None  # the unproven candidate already logged
    proving: asyncio.Task | None = None  # a proof under way, apart from the health checks (a silent address must not stall them)
    checking_since: float | None = None

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
        self.synced: Callable[[], bool] = lambda: True  # membership: the first read of etcd is done
        self.ready = asyncio.Event()  # set after the first pass over the workers once `synced`
        self.on_event: Callable[[str, str], None] = lambda reason, detail: None  # membership counts and logs these
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

    def add(self, spec: WorkerSpec, key: str | None = None) -> None:
        """A worker that registered, or registered again. At a new address it is a candidate until it proves itself
        there (`_prove`); without a way to prove (the vLLM backend) the new address is taken as before."""
        w = self.workers.get(spec.worker_id)
        if w is None:
            w = self.workers[spec.worker_id] = WorkerState(spec, key=key)
            self._series(w)
            self._count()
            return
        if w.spec == spec:
            w.key, w.unregistered_since, w.candidate = key or w.key, None, None
            return
        if hasattr(self.backend, "prove"):
            if w.candidate is None or w.candidate[0] != spec:
                w.candidate = (spec, key)
            return
        self._move(w, spec, key)

    def _move(self, w: WorkerState, spec: WorkerSpec, key: str | None) -> None:
        self.mark_down(w, f"moved to {spec.host}:{spec.port}", gone=True)  # requests held by the old connection fail over now
        w.spec, w.key, w.candidate, w.unregistered_since = spec, key or w.key, None, None

    async def _prove(self, w: WorkerState) -> None:
        if w.candidate is None:
            return
        spec, key = w.candidate
        try:
            info = await self.backend.prove(spec)
        except WorkerFailed as exc:
            if w.told != spec:
                w.told = spec
                self.on_event("unproven_move", f"{w.worker_id} registered at {spec.host}:{spec.port}, but nothing there proves to be it "
                                               f"({exc.reason}); it stays at {w.spec.host}:{w.spec.port}")
            return
        if w.candidate is not None and w.candidate[0] == spec and info.get("worker_id", w.worker_id) == w.worker_id:
            self.on_event("moved", f"{w.worker_id} moved from {w.spec.host}:{w.spec.port} to {spec.host}:{spec.port} (proven there)")
            self._move(w, spec, key)

    def unregister(self, key: str, why: str) -> None:
        """The etcd key `key` is gone: the worker registered by exactly that key (not another key that names the same
        id) leaves now if it does not answer, else after UNREGISTERED_GRACE unless it registers again."""
        for w in list(self.workers.values()):
            if w.candidate is not None and w.candidate[1] == key:
                w.candidate = None
            if w.key == key:
                if w.up:
                    w.unregistered_since = w.unregistered_since or time.monotonic()
                else:
                    self.remove(w.worker_id, why)

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
            synced = self.synced()
            await asyncio.gather(*(self._check(w) for w in list(self.workers.values())))
            if synced:
                self.ready.set()
            now = time.monotonic()
            for w in list(self.workers.values()):
                if w.unregistered_since is not None and (not w.up or now - w.unregistered_since > UNREGISTERED_GRACE):
                    self.remove(w.worker_id, "its registration is gone (lease expired or the worker left)"
                                + ("" if not w.up else f" and it did not register again within {UNREGISTERED_GRACE:g} s"))
            await asyncio.sleep(interval)

    async def _check(self, w: WorkerState) -> None:
        if w.candidate is not None and (w.proving is None or w.proving.done()):
            w.proving = asyncio.ensure_future(self._prove(w))
        w.checking_since = time.monotonic()
        try:
            info = await self.backend.health(w)
        except WorkerFailed as exc:
            gone = exc.reason in GONE
            w.misses += 1
            if gone or w.misses >= MISSES_DOWN or not w.up:
                self.mark_down(w, f"health check failed: {exc.reason}" + ("" if gone or w.misses == 1 else f" ({w.misses} in a row)"), gone=gone)
            return
        finally:
            w.checking_since = None
        w.misses = 0
        if info.get("healthy") is False:
            self.mark_down(w, f"unhealthy: {info.get('reason', '?')}")
        else:
            self.mark_up(w, info)

    def _suspect(self, w: WorkerState, now: float) -> bool:
        return w.misses > 0 or (w.checking_since is not None and now - w.checking_since > SUSPECT_AFTER)

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

    async def pick_decode_held(self, exclude: set[str]) -> WorkerState:
        """pick_decode, but before the first pass over the workers wait for it (up to HOLD_AT_START) instead of failing."""
        try:
            return self.pick_decode(exclude)
        except NoDecodeWorker:
            if self.ready.is_set():
                raise
        try:
            async with asyncio.timeout(HOLD_AT_START):
                await self.ready.wait()
        except asyncio.TimeoutError:
            pass
        return self.pick_decode(exclude)

    def pick_decode(self, exclude: set[str]) -> WorkerState:
        up = [w for w in self.workers.values() if w.role == "decode" and w.up and w.worker_id not in exclude]
        if not up:
            raise NoDecodeWorker(f"no decode worker is up; {self.missing_hint}")
        now = time.monotonic()
        steady = [w for w in up if not self._suspect(w, now)]
        up = steady or up
        if self.router == "random":
            return random.choice(up)
        if self.router in ("kv", "kv-load"):  # least loaded
            return min(up, key=lambda w: (w.inflight, w.requests))
        return up[next(self._rr) % len(up)]
