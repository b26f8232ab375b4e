"""The prefill worker's side of KV: make a prompt's KV into the arena, hand out its capability, and end every region
through the store's one release (runtime/kv.py `KVStore.release`).

A region ends when the decode worker has read it (`kv_read` over the channel, or its NIXL release notice), when its
request ended first (`kv_release` from the frontend or the decode worker: the client went away, or the decode side
refused or could not use it), when nobody came for it within the TTL (the progress loop's sweep, or a reserve that
found the arena full), or when the worker stops. Each end is counted in `disagg_engine_kv_released_total{reason}`;
the arena's bytes in use and its largest free region are gauges, and readiness fails (with the reason) while the
largest free region cannot hold the KV of the smallest prompt this worker is sent.
"""

from __future__ import annotations

import asyncio
import logging
import time

from .channel import RemoteError, Request
from .kv import Arena, KVStore, NixlTransport, check_handle, handle_mac
from .mock_kv import token_array

log = logging.getLogger("disagg.worker")

RELEASE_POLL_SECONDS = 0.005  # how often NIXL release notices are collected while KV waits to be read
KV_TTL_SECONDS = 30.0  # a region nobody read within this is released (the decode side prefilled again, or left)


def min_remote_prompt_tokens(policy) -> int:
    """The fewest uncached tokens the routing rule sends to a prefill worker (schemas/routing.py: remote only above
    max-local-prefill-length when conditional-disagg is on; any prompt otherwise)."""
    return policy.max_local_prefill_length + 1 if policy.conditional_disagg else 1


class PrefillKV:
    def __init__(self, worker_id: str, arena: Arena, layout, secret: bytes, metrics, nixl: NixlTransport | None, transport: str,
                 min_prompt_tokens: int, ttl_seconds: float = KV_TTL_SECONDS, announced_layout: dict | None = None):
        self.worker_id, self.arena, self.layout, self.secret, self.metrics = worker_id, arena, layout, secret, metrics
        self.nixl, self.transport = nixl, transport
        self.min_prompt_bytes = layout.nbytes(min_prompt_tokens)
        self.min_prompt_tokens = min_prompt_tokens
        self.announced_layout = announced_layout  # kv_layout.KVLayoutInfo as JSON: travels in every handle, under its MAC
        self.store = KVStore(arena, ttl_seconds, withdraw=nixl.withdraw if nixl is not None else None, on_release=self._count)

    def _count(self, reason: str, entry) -> None:
        self.metrics.kv_released.labels(reason=reason).inc()
        if reason == "ttl":
            self.metrics.kv_expired.inc()

    # ---- readiness and gauges ---------------------------------------------------------------------------------

    def readiness(self) -> tuple[bool, str]:
        free = self.arena.largest_free
        if free < self.min_prompt_bytes:
            return False, (f"kv_arena_full: the largest free region of the KV arena ({free >> 10} KiB, {len(self.store.entries)} region(s) waiting to be "
                           f"read) cannot hold the KV of a {self.min_prompt_tokens}-token prompt ({self.min_prompt_bytes >> 10} KiB)")
        return True, "ok"

    def update_gauges(self) -> None:
        self.metrics.kv_pending.set(len(self.store.entries))
        self.metrics.arena_used.set(self.arena.used)
        self.metrics.arena_free_max.set(self.arena.largest_free)

    # ---- operations -------------------------------------------------------------------------------------------

    def make(self, tokens, start: int, request: str) -> tuple[dict, bytes]:
        """Reserve a region, fill it with the prompt's KV and return (handle, NIXL metadata). RemoteError when full."""
        nbytes = self.layout.nbytes(len(tokens) - start)
        entry = self.store.reserve(nbytes)
        if entry is None:
            raise RemoteError("kv_arena_full", f"no room for {nbytes >> 10} KiB of KV: the largest free region is {self.arena.largest_free >> 10} KiB "
                                               f"and {len(self.store.entries)} region(s) wait to be read")
        try:
            ids = token_array(tokens)  # the worker's uint32 view of the packed ids as it is; a list converted once
            self.layout.fill(self.arena.view(entry.offset, nbytes), ids, start)
            handle = {"kv_id": entry.kv_id, "worker_id": self.worker_id, "request": request, "start": start, "tokens": len(tokens),
                      "length": nbytes, "checksum": self.layout.checksum(ids, start), "transport": self.transport,
                      "addr": self.arena.addr + entry.offset, "layout": self.announced_layout}
            handle["mac"] = handle_mac(self.secret, handle)
            metadata = self.nixl.expose(entry) if self.nixl is not None else b""
        except BaseException:
            self.store.release(entry, "aborted")
            raise
        return handle, metadata

    def read(self, req: Request) -> None:
        """`kv_read`: the bytes, once; the region ends as it is sent."""
        handle = req.header["handle"]
        check_handle(self.secret, handle, handle.get("request", ""))
        entry = self.store.take(handle["kv_id"])
        if entry is None:
            raise RemoteError("kv_gone", "no such KV: expired, or already read")
        try:
            data = self.arena.view(entry.offset, entry.length).tobytes()
        finally:
            self.store.release(entry, "read")
        req.send({"end": True}, data)

    def release(self, req: Request) -> None:
        """`kv_release`: the request that owned this KV ended without reading it. The handle proves the caller was given
        it (a stranger cannot name a region to free); an unknown or already ended region is not an error."""
        handle = req.header.get("handle")
        if not isinstance(handle, dict):
            raise RemoteError("bad_request", "kv_release needs the KV handle")
        check_handle(self.secret, handle, handle.get("request", ""))
        released = self.store.release_id(str(handle["kv_id"]), "aborted")
        req.send({"released": released, "end": True})

    def shutdown(self) -> int:
        """Release every region (zeroed, withdrawn from NIXL) before the process goes."""
        n = self.store.release_all("shutdown")
        if n:
            log.info("released %d KV region(s) that waited to be read at shutdown", n)
        return n

    async def progress(self) -> None:
        """While KV waits to be read over NIXL, collect the readers' release notices every RELEASE_POLL_SECONDS (the
        READ itself needs nothing from this loop: NIXL's progress thread serves it as it arrives); otherwise sleep
        until KV is made (an event, not a timer) or the next expiry check."""
        last_expiry = time.monotonic()
        store = self.store
        while True:
            if not store.entries or self.nixl is None:
                try:
                    async with asyncio.timeout(1.0):  # not wait_for: on 3.11 it can swallow a cancel (python/cpython#86296)
                        await store.pending.wait()
                except asyncio.TimeoutError:
                    pass
                if self.nixl is None:
                    await asyncio.sleep(1.0)  # bytes go out on `kv_read`: only expiry to do here
            if self.nixl is not None:
                for msg in self.nixl.poll_notifications():
                    if msg.startswith(b"release:"):
                        store.release_id(msg[8:].decode(errors="replace"), "read")
            now = time.monotonic()
            if now - last_expiry > 1.0:
                last_expiry = now
                store.expire(now)
            if self.nixl is not None and store.entries:
                # NIXL's own progress thread moves a peer's READ the moment it arrives (kv.py `_event_driven_agent`);
                # this loop only collects release notices, which free memory but hold up no request.
                # Without that thread (a NIXL build that does not allow it) a READ moves only while we poll here.
                await asyncio.sleep(RELEASE_POLL_SECONDS if getattr(self.nixl, "event_driven", False) else 0.0002)

