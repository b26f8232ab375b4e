"""Every way a prefilled KV region ends goes through the store's one release: zeroed, withdrawn from NIXL, counted
by reason, its bytes back in the arena. One test per path, on the prefill worker's own objects (no processes)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from disagg.runtime.channel import RemoteError
from disagg.runtime.kv import Arena, KVStore, KVTransferError
from disagg.runtime.metrics import WorkerMetrics
from disagg.runtime.mock_kv import KVLayout
from disagg.runtime.plan import ModelShape
from disagg.runtime.prefill_kv import PrefillKV, min_remote_prompt_tokens
from disagg.schemas.routing import RoutingPolicy

SECRET = b"secret of this run"
LAYOUT = KVLayout(ModelShape(), SECRET)
ROW = LAYOUT.row_bytes  # 8 KiB per token


class FakeNixl:
    """What PrefillKV asks of NixlTransport: expose/withdraw a region, and the peers' notifications."""

    def __init__(self):
        self.registered: set[str] = set()
        self.notes: list[bytes] = []

    def expose(self, entry):
        entry.registration = entry.kv_id
        self.registered.add(entry.kv_id)
        return b"metadata"

    def withdraw(self, entry):
        self.registered.discard(entry.registration)
        entry.registration = None

    def poll_notifications(self):
        out, self.notes = self.notes, []
        return out


class FakeRequest:
    def __init__(self, header: dict, body: bytes = b""):
        self.header, self.body, self.sent = header, body, []

    def send(self, header, body=b""):
        self.sent.append((header, bytes(body)))


def make(arena_tokens: int = 64, nixl: bool = True, min_tokens: int = 1, ttl: float = 30.0):
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry, "prefill-0", "prefill")
    fake = FakeNixl() if nixl else None
    kv = PrefillKV("prefill-0", Arena(arena_tokens * ROW), LAYOUT, SECRET, metrics, fake, "nixl" if nixl else "channel", min_tokens, ttl)
    return kv, fake, registry


def released(registry, reason: str) -> float:
    return registry.get_sample_value("disagg_engine_kv_released_total", {"worker_id": "prefill-0", "role": "prefill", "reason": reason}) or 0.0


def expired(registry) -> float:
    return registry.get_sample_value("disagg_engine_kv_expired_total", {"worker_id": "prefill-0", "role": "prefill"}) or 0.0


def region(kv, handle):
    entry = kv.store.entries[handle["kv_id"]]
    return kv.arena.view(entry.offset, entry.length)


def assert_gone(kv, fake, handle, offset_bytes):
    """The region left the table, NIXL and the arena, and its bytes are zero."""
    assert handle["kv_id"] not in kv.store.entries
    if fake is not None:
        assert handle["kv_id"] not in fake.registered
    assert not kv.arena.view(*offset_bytes).any()


def held(kv, handle):
    entry = kv.store.entries[handle["kv_id"]]
    return entry.offset, entry.length


def test_read_over_the_channel_ends_the_region_once():
    kv, _, registry = make(nixl=False)
    handle, _ = kv.make(list(range(10)), 0, "r1")
    where = held(kv, handle)
    assert kv.arena.used == 10 * ROW and region(kv, handle).any()
    req = FakeRequest({"handle": handle})
    kv.read(req)
    assert len(req.sent[0][1]) == 10 * ROW  # the bytes went out before the region was zeroed
    assert_gone(kv, None, handle, where)
    assert kv.arena.used == 0 and released(registry, "read") == 1
    with pytest.raises(RemoteError, match="kv_gone"):
        kv.read(FakeRequest({"handle": handle}))  # a handle is good for one read
    assert released(registry, "read") == 1


def test_a_nixl_release_notice_from_the_reader_ends_the_region():
    kv, fake, registry = make()
    handle, metadata = kv.make(list(range(10)), 0, "r1")
    where = held(kv, handle)
    assert metadata == b"metadata" and handle["kv_id"] in fake.registered
    fake.notes.append(b"release:" + handle["kv_id"].encode())

    async def one_turn():
        task = asyncio.get_running_loop().create_task(kv.progress())
        for _ in range(50):
            await asyncio.sleep(0.001)
            if not kv.store.entries:
                break
        task.cancel()

    asyncio.run(one_turn())
    assert_gone(kv, fake, handle, where)
    assert kv.arena.used == 0 and released(registry, "read") == 1 and expired(registry) == 0


def test_a_peer_releases_kv_its_request_will_not_read_and_a_stranger_cannot():
    kv, fake, registry = make()
    handle, _ = kv.make(list(range(10)), 0, "r1")
    where = held(kv, handle)
    with pytest.raises(KVTransferError, match="forged_handle"):
        kv.release(FakeRequest({"handle": {**handle, "mac": "0" * 32}}))  # naming a region is not enough to free it
    assert handle["kv_id"] in kv.store.entries
    req = FakeRequest({"handle": handle})
    kv.release(req)
    assert req.sent[0][0]["released"] is True
    assert_gone(kv, fake, handle, where)
    assert kv.arena.used == 0 and released(registry, "aborted") == 1
    again = FakeRequest({"handle": handle})
    kv.release(again)  # already ended (read, expired): not an error, nothing freed twice
    assert again.sent[0][0]["released"] is False and released(registry, "aborted") == 1


def test_the_sweep_releases_what_nobody_read_within_the_ttl():
    kv, fake, registry = make(ttl=5)
    handle, _ = kv.make(list(range(10)), 0, "r1")
    where = held(kv, handle)
    created = kv.store.entries[handle["kv_id"]].created
    assert kv.store.expire(created + 1) == 0
    assert kv.store.expire(created + 6) == 1
    assert_gone(kv, fake, handle, where)
    assert kv.arena.used == 0 and released(registry, "ttl") == 1 and expired(registry) == 1
    assert not kv.store.pending.is_set()


def test_a_full_arena_releases_expired_regions_before_it_refuses():
    # The bug of issue 20: reserve dropped what it expired, so those regions stayed allocated, unzeroed and
    # registered with NIXL forever; every later prefill met a full arena.
    kv, fake, registry = make(arena_tokens=20, ttl=5)
    old, _ = kv.make(list(range(15)), 0, "old")
    where = held(kv, old)
    with pytest.raises(RemoteError, match="kv_arena_full"):
        kv.make(list(range(10)), 0, "young")  # the old region is not expired yet: refused, nothing freed
    assert kv.arena.used == 15 * ROW
    kv.store.entries[old["kv_id"]].created -= 10  # now it is
    new, _ = kv.make(list(range(10)), 0, "new")
    assert old["kv_id"] not in kv.store.entries and old["kv_id"] not in fake.registered
    assert kv.arena.used == 10 * ROW and released(registry, "ttl") == 1 and expired(registry) == 1
    assert new["kv_id"] in fake.registered
    # the new region may overlap the old one's place: what is not the new region's bytes is zero
    off, n = where
    new_off = kv.store.entries[new["kv_id"]].offset
    mask = np.ones(n, dtype=bool)
    lo, hi = max(new_off - off, 0), min(new_off + 10 * ROW - off, n)
    if lo < hi:
        mask[lo:hi] = False
    assert not kv.arena.view(off, n)[mask].any()


def test_shutdown_releases_every_waiting_region():
    kv, fake, registry = make()
    handles = [kv.make(list(range(5)), 0, f"r{i}")[0] for i in range(3)]
    places = [held(kv, h) for h in handles]
    assert kv.shutdown() == 3
    for h, where in zip(handles, places):
        assert_gone(kv, fake, h, where)
    assert kv.arena.used == 0 and released(registry, "shutdown") == 3 and not fake.registered


def test_a_region_whose_handle_cannot_be_made_is_released():
    kv, fake, registry = make()

    def broken(entry):
        raise RuntimeError("NIXL refused the registration")

    fake.expose = broken
    with pytest.raises(RuntimeError):
        kv.make(list(range(5)), 0, "r1")
    assert kv.arena.used == 0 and not kv.store.entries and released(registry, "aborted") == 1


def test_readiness_and_gauges_follow_the_largest_free_region():
    kv, _, registry = make(arena_tokens=40, min_tokens=11)
    assert kv.readiness() == (True, "ok")
    a, _ = kv.make(list(range(15)), 0, "a")
    b, _ = kv.make(list(range(15)), 0, "b")
    ready, why = kv.readiness()  # 10 tokens' room left: a minimum prompt of 11 does not fit
    assert not ready and why.startswith("kv_arena_full") and "11-token prompt" in why and "2 region(s)" in why
    kv.update_gauges()
    labels = {"worker_id": "prefill-0", "role": "prefill"}
    assert registry.get_sample_value("disagg_engine_kv_arena_used_bytes", labels) == 30 * ROW
    assert registry.get_sample_value("disagg_engine_kv_arena_largest_free_bytes", labels) == 10 * ROW
    assert registry.get_sample_value("disagg_engine_kv_pending", labels) == 2
    kv.store.release_id(a["kv_id"], "aborted")
    assert kv.readiness() == (True, "ok")
    kv.store.release_id(b["kv_id"], "aborted")
    kv.update_gauges()
    assert registry.get_sample_value("disagg_engine_kv_arena_used_bytes", labels) == 0
    assert registry.get_sample_value("disagg_engine_kv_arena_largest_free_bytes", labels) == 40 * ROW


def test_the_minimum_prompt_is_the_smallest_the_routing_rule_sends_remote():
    assert min_remote_prompt_tokens(RoutingPolicy(remote_prefill=True, conditional_disagg=True, max_local_prefill_length=100)) == 101
    assert min_remote_prompt_tokens(RoutingPolicy(remote_prefill=True, conditional_disagg=False, max_local_prefill_length=100)) == 1


def test_the_store_never_frees_a_region_twice():
    store = KVStore(Arena(1 << 16), ttl_seconds=5)
    entry = store.reserve(1000)
    assert store.release(entry, "read") and not store.release(entry, "read") and not store.release_id(entry.kv_id, "aborted")
    other = store.reserve(1000)
    assert other.offset == entry.offset  # the place is reused: a late second release of `entry` must not free `other`
    assert not store.release(entry, "read") and store.entries == {other.kv_id: other} and store.arena.used == 1000


# ---- the frontend: KV its request will not read is released at once, not left to the TTL ----------------------


class FrontBackend:
    """A backend whose prefill waits for `gate` and whose decode refuses or waits, recording the releases."""

    def __init__(self, generate_mode: str):
        self.gate = asyncio.Event()
        self.released: list[str] = []
        self.generate_mode = generate_mode

    async def prefill(self, worker, tokens, cached, request, timeout):
        await self.gate.wait()
        return {"kv_id": request}, b""

    async def release_kv(self, worker, kv):
        self.released.append(kv[0]["kv_id"])

    async def generate(self, worker, tokens, max_tokens, kv, sampling, request, timeout):
        from disagg.runtime.backends import KVLoadFailed

        if kv is not None and self.generate_mode == "refuse":
            raise KVLoadFailed("incompatible", "the layouts differ")
        if self.generate_mode == "hang":
            await asyncio.sleep(3600)
        yield "start", {"prefill": "remote" if kv is not None else "local", "cached_tokens": 0, "computed_tokens": 0 if kv else len(tokens),
                        "kv": {"status": "ok" if kv else "none"}}
        yield "tokens", [1]
        yield "end", "length"

    def detokenize(self, ids, first):
        return "x"

    def abort(self, worker):
        pass


def front(generate_mode: str, prefill_timeout: float = 5.0):
    from types import SimpleNamespace

    from disagg.runtime.frontend.pool import WorkerPool
    from disagg.runtime.frontend.prefill_queue import PrefillQueue
    from disagg.runtime.frontend.router import Router
    from disagg.runtime.metrics import FrontendMetrics
    from disagg.runtime.plan import WorkerSpec

    backend = FrontBackend(generate_mode)
    metrics = FrontendMetrics(CollectorRegistry())
    pool = WorkerPool([WorkerSpec("decode-0", "decode", 0, 1), WorkerSpec("prefill-0", "prefill", 0, 2)], backend, metrics)
    for w in pool.workers.values():
        pool.mark_up(w, {"pid": 1, "state": "ready"})
    queue = PrefillQueue(pool, backend, metrics, 1, prefill_timeout)
    plan = SimpleNamespace(policy=RoutingPolicy(remote_prefill=True), enable_prefix_caching=False)
    return Router(plan, pool, queue, backend, metrics, 5.0), queue, backend


async def _settle(backend, n=1):
    for _ in range(200):
        if len(backend.released) >= n:
            return
        await asyncio.sleep(0.005)


def test_a_prefill_that_finishes_after_its_requester_left_is_released():
    async def case():
        router, queue, backend = front("ok", prefill_timeout=0.1)
        dispatcher = asyncio.get_running_loop().create_task(queue.dispatcher())
        from disagg.runtime.frontend.prefill_queue import PrefillFailed

        with pytest.raises(PrefillFailed, match="timeout"):
            await queue.submit([1] * 10, 0, "late")  # the wait times out while the prefill still runs
        assert backend.released == []
        backend.gate.set()  # now the prefill answers: nobody wants its KV
        await _settle(backend)
        dispatcher.cancel()
        return backend.released

    assert asyncio.run(case()) == ["late"]


def test_kv_the_decode_worker_refused_is_released():
    async def case():
        router, queue, backend = front("refuse")
        backend.gate.set()
        dispatcher = asyncio.get_running_loop().create_task(queue.dispatcher())
        events = [kind async for kind, _ in router.serve([1] * 10, 1, "refused", {}, "", {"any": False})]
        await _settle(backend)
        dispatcher.cancel()
        return events, backend.released

    events, released_ids = asyncio.run(case())
    assert "end" in events and released_ids == ["refused"]  # served by a local prefill, and the KV freed at once


def test_kv_of_a_client_that_left_between_prefill_and_decode_is_released_and_read_kv_is_not():
    async def case():
        router, queue, backend = front("hang")
        backend.gate.set()
        dispatcher = asyncio.get_running_loop().create_task(queue.dispatcher())
        events = router.serve([1] * 10, 1, "abandoned", {}, "", {"any": False})
        consumer = asyncio.get_running_loop().create_task(anext(events))
        await asyncio.sleep(0.05)  # prefilled; the decode has not started
        consumer.cancel()  # the client went away (the HTTP handler is cancelled and closes `events`)
        with pytest.raises(asyncio.CancelledError):
            await consumer
        await events.aclose()
        await _settle(backend)
        backend.generate_mode = "ok"
        done = [kind async for kind, _ in router.serve([1] * 10, 1, "read", {}, "", {"any": False})]
        await asyncio.sleep(0.02)
        dispatcher.cancel()
        return done, backend.released

    done, released_ids = asyncio.run(case())
    assert released_ids == ["abandoned"] and "end" in done  # the KV that was read is the decode worker's to release


def test_a_prefill_result_that_lands_as_its_requester_is_cancelled_is_released():
    # The race the soak test found: the prefill's answer is set on the job while the waiting request is being
    # cancelled (its client left); the requester never sees it and the dispatcher thinks it was delivered.
    async def case():
        router, queue, backend = front("ok")
        dispatcher = asyncio.get_running_loop().create_task(queue.dispatcher())
        waiter = asyncio.get_running_loop().create_task(queue.submit([1] * 10, 0, "raced"))
        await asyncio.sleep(0.01)
        backend.gate.set()
        while not queue_job_done(queue, waiter):  # the prefill answers; the waiter has not resumed yet
            await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await _settle(backend)
        dispatcher.cancel()
        return backend.released

    assert asyncio.run(case()) == ["raced"]


def queue_job_done(queue, waiter) -> bool:
    """True once the prefill's result is set on the job the waiter awaits (read from the waiter's frame)."""
    frame = waiter.get_coro().cr_frame
    job = frame.f_locals.get("job") if frame is not None else None
    return job is not None and job.future.done()


@pytest.mark.slow
def test_a_prefill_worker_whose_arena_cannot_hold_a_minimum_prompt_is_not_ready_and_says_why(tmp_path):
    from .conftest import start_server, variant

    # The routing rule sends prompts over 200 uncached tokens remote: 201 tokens of KV (1.6 MiB) never fit in 1 MiB.
    config = variant(tmp_path, "small-arena.yaml", **{"VllmWorker.max-local-prefill-length": 200})
    s = start_server(config, tmp_path / "serve", "--kv-arena-mb", "1")
    try:
        health = s.get("/health")
        prefill = next(w for w in health["workers"] if w["role"] == "prefill")
        assert health["status"] == "degraded" and prefill["up"] and prefill["state"] == "not_ready"
        assert prefill["last_error"].startswith("kv_arena_full") and "201-token prompt" in prefill["last_error"]
        assert s.metric("disagg_engine_kv_arena_largest_free_bytes", worker_id="prefill-0") == 2**20
        assert s.metric("disagg_engine_kv_arena_used_bytes", worker_id="prefill-0") == 0
    finally:
        s.stop()
