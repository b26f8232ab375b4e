"""The prefill queue: remote prefills wait here for a free prefill worker (Dynamo v0's queue, bounded by
`max-prefill-queue-size` through the routing rule) and are dispatched to the least busy one.

KV that was prefilled for a request that no longer wants it (its client left, its wait timed out) is released on the
prefill worker at once (`release`), not left to the worker's TTL.

Every way a remote prefill can fail ends in `PrefillFailed` with a reason, and the caller prefills locally: no
prefill worker alive, the worker died or refused (KV arena full, prompt too large for its arena), the wait for a
slot or the prefill itself took longer than `--prefill-timeout`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

from ..backends import WorkerFailed


class PrefillFailed(Exception):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass
class PrefillJob:
    tokens: list[int]
    cached_tokens: int
    request: str
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


class PrefillQueue:
    def __init__(self, pool, backend, metrics, concurrency: int, timeout: float):
        self.pool, self.backend, self.metrics = pool, backend, metrics
        self.concurrency, self.timeout = concurrency, timeout
        self.jobs: deque[PrefillJob] = deque()
        self.wake = asyncio.Event()
        self._releases: set[asyncio.Task] = set()

    def __len__(self) -> int:
        return len(self.jobs)

    def _gauge(self) -> None:
        self.metrics.queue_size.set(len(self.jobs))

    def fail_all(self, reason: str, why: str) -> None:
        while self.jobs:
            job = self.jobs.popleft()
            if not job.future.done():
                job.future.set_exception(PrefillFailed(reason, why))
        self._gauge()

    async def submit(self, tokens: list[int], cached: int, request: str):
        """The KV handle of a remote prefill; raises PrefillFailed."""
        if not self.pool.any_up("prefill"):
            raise PrefillFailed("no_prefill_workers", "no prefill worker is alive")
        job = PrefillJob(tokens, cached, request, asyncio.get_running_loop().create_future())
        self.jobs.append(job)
        self._gauge()
        self.wake.set()
        handed = False
        try:
            async with asyncio.timeout(self.timeout):  # not wait_for: on 3.11 it can swallow a cancel (python/cpython#86296)
                result = await asyncio.shield(job.future)
            handed = True
            return result
        except asyncio.TimeoutError:
            raise PrefillFailed("timeout", f"no prefill result within {self.timeout:g} s") from None
        finally:
            if job.future.done() and not handed and not job.future.cancelled() and job.future.exception() is None:
                self.release(*job.future.result())  # the result came as the requester was cancelled (or timed out): nobody reads it
            elif not job.future.done():
                job.future.cancel()  # the dispatcher skips it; a running prefill's answer is dropped
                try:
                    self.jobs.remove(job)
                except ValueError:
                    pass
                self._gauge()

    def release(self, worker_id: str, kv) -> None:
        """Free, on its prefill worker, KV that its request will not read (in the background: the caller may be a
        request being cancelled)."""
        w = self.pool.workers.get(worker_id)
        if w is None or kv is None:
            return
        task = asyncio.get_running_loop().create_task(self.backend.release_kv(w, kv))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def dispatcher(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.jobs:
                idle = [w for w in self.pool.of_role("prefill") if w.up and w.inflight < self.concurrency]
                if not idle:
                    break
                worker = min(idle, key=lambda w: (w.state != "ready", w.inflight))  # one whose KV arena is full last
                job = self.jobs.popleft()
                self._gauge()
                if job.future.done():  # its requester gave up waiting
                    continue
                self.metrics.queue_wait.observe(time.perf_counter() - job.enqueued)
                worker.inflight += 1
                asyncio.get_running_loop().create_task(self._run(worker, job))

    async def _run(self, w, job: PrefillJob) -> None:
        w.requests += 1
        self.metrics.worker_requests.labels(w.worker_id, "prefill").inc()
        try:
            kv = await self.backend.prefill(w, job.tokens, job.cached_tokens, job.request, self.timeout)
            if not job.future.done():
                job.future.set_result((w.worker_id, kv))
            else:  # its requester left (client gone, or its wait timed out): nobody will read this KV
                self.release(w.worker_id, kv)
        except WorkerFailed as exc:
            if exc.reason in ("connect", "disconnected", "auth"):
                self.pool.mark_down(w, f"prefill failed: {exc.reason}")  # gone: the next health check says when it is back
            if not job.future.done():
                job.future.set_exception(PrefillFailed(exc.reason, f"{w.worker_id}: {exc}"))
        except asyncio.CancelledError:
            if not job.future.done():
                job.future.set_exception(PrefillFailed("cancelled", w.worker_id))
            raise
        finally:
            w.inflight -= 1
            self.wake.set()
