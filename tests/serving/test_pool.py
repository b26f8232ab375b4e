"""The frontend's worker pool decides on evidence (issue 20): one slow health answer under load does not take the only
decode worker out (bursts of 503 were seen), three missed checks or a closed channel do; an overdue check steers new
requests to another worker; a registration at a new address moves nothing until the worker proves itself there; a
key that disappears removes only the worker registered by that very key, and not while it still answers."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from disagg.runtime.backends import WorkerFailed
from disagg.runtime.frontend.pool import MISSES_DOWN, WorkerPool
from disagg.runtime.metrics import FrontendMetrics
from disagg.runtime.plan import WorkerSpec


class Backend:
    """Health answers scripted per worker id: "ok", "timeout", "gone" or "slow" (answers after 2 s)."""

    def __init__(self):
        self.script: dict[str, str] = {}
        self.proofs: dict[tuple[str, int], bool] = {}
        self.aborted: list[str] = []

    async def health(self, w) -> dict:
        what = self.script.get(w.worker_id, "ok")
        if what == "slow":
            await asyncio.sleep(2)
        if what == "timeout":
            raise WorkerFailed("timeout", "no answer within 1 s")
        if what == "gone":
            raise WorkerFailed("disconnected", "closed")
        return {"healthy": True, "pid": 1, "worker_id": w.worker_id}

    async def prove(self, spec) -> dict:
        if self.proofs.get((spec.host, spec.port)):
            return {"worker_id": spec.worker_id}
        raise WorkerFailed("auth", "refused our proof")

    def abort(self, w) -> None:
        self.aborted.append(w.worker_id)


def _pool(*ids: str) -> tuple[WorkerPool, Backend]:
    backend = Backend()
    specs = [WorkerSpec(i, "decode", n, 9000 + n, "127.0.0.1") for n, i in enumerate(ids)]
    return WorkerPool(specs, backend, FrontendMetrics(CollectorRegistry())), backend


def test_one_missed_check_is_not_evidence_three_are_and_a_closed_channel_is_at_once():
    async def case():
        pool, backend = _pool("d0")
        w = pool.workers["d0"]
        await pool._check(w)
        assert w.up
        backend.script["d0"] = "timeout"
        for n in range(1, MISSES_DOWN):
            await pool._check(w)
            assert w.up, f"marked down after {n} missed check(s)"
            assert pool.pick_decode(set()) is w  # the only worker still serves
        await pool._check(w)
        assert not w.up and "3 in a row" in w.last_error
        backend.script["d0"] = "ok"
        await pool._check(w)
        assert w.up and w.misses == 0
        backend.script["d0"] = "gone"
        await pool._check(w)
        assert not w.up and backend.aborted == ["d0"]

    asyncio.run(case())


def test_an_overdue_check_steers_new_requests_to_another_worker():
    async def case():
        pool, backend = _pool("d0", "d1")
        for w in pool.workers.values():
            await pool._check(w)
        backend.script["d0"] = "slow"
        check = asyncio.ensure_future(pool._check(pool.workers["d0"]))
        await asyncio.sleep(0.6)  # past SUSPECT_AFTER
        assert {pool.pick_decode(set()).worker_id for _ in range(6)} == {"d1"}
        assert pool.workers["d0"].up  # not down: its answer may still come
        backend.script["d0"] = "ok"
        await check
        assert {pool.pick_decode(set()).worker_id for _ in range(6)} == {"d0", "d1"}

    asyncio.run(case())


async def _checked(pool: WorkerPool, w) -> None:
    """One health check, and the proof it started (proofs run apart from the checks)."""
    await pool._check(w)
    if w.proving is not None:
        await w.proving


def test_a_new_address_is_a_candidate_until_proven_and_removal_goes_by_full_key():
    async def case():
        pool, backend = _pool()
        real = WorkerSpec("d0", "decode", 0, 9000, "10.0.0.2")
        pool.add(real, "/ns/m/decode/d0")
        await _checked(pool, pool.workers["d0"])
        relay = WorkerSpec("d0", "decode", 0, 7777, "10.0.0.9")
        pool.add(relay, "/ns/m/decode/d0")
        await _checked(pool, pool.workers["d0"])
        assert pool.workers["d0"].spec == real and pool.workers["d0"].up  # the relay cannot prove it is d0
        pool.unregister("/ns/m/decode/elsewhere", "deleted")
        assert "d0" in pool.workers  # another key that named d0 removes nothing
        pool.unregister("/ns/m/decode/d0", "deleted")
        assert "d0" in pool.workers and pool.workers["d0"].unregistered_since is not None  # still answers: grace
        pool.add(real, "/ns/m/decode/d0")
        assert pool.workers["d0"].unregistered_since is None  # registered again
        moved = WorkerSpec("d0", "decode", 0, 9001, "10.0.0.3")
        backend.proofs[("10.0.0.3", 9001)] = True
        pool.add(moved, "/ns/m/decode/d0")
        await _checked(pool, pool.workers["d0"])
        assert pool.workers["d0"].spec == moved  # proven there: a move
        backend.script["d0"] = "gone"
        await _checked(pool, pool.workers["d0"])
        pool.unregister("/ns/m/decode/d0", "deleted")
        assert "d0" not in pool.workers  # gone and unregistered: out at once

    asyncio.run(case())
