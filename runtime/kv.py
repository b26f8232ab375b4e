"""Moving KV cache between worker processes: an arena of host memory on each side, KV handles that are
capabilities, and a transport that reads the bytes.

The prefill worker makes a request's KV straight into its arena (`KVStore.put`) and answers with a handle: a random
id, where the bytes are, their keyed checksum, and an HMAC over all of that with the run's secret, so that the
handle cannot be forged, altered or moved to another request. The decode worker reads the bytes once and tells the
prefill worker to release them; every region ends in one release (`KVStore.release`) that zeroes it, withdraws it
from NIXL and counts why it ended, whether it was read, expired, aborted or outlived by its worker.

`NixlTransport` is the real transport: each worker owns one NIXL agent (UCX backend, DRAM). A region is registered
with NIXL for as long as its request is in flight, and only that region's descriptor travels in the handle (NIXL
partial metadata, over the authenticated channel): a process that was not handed it has nothing to address. The
decode worker READs the region with its release notice attached to the READ (NIXL delivers it when the READ has
completed: no message of its own after it). Between two processes of one host UCX reads with one copy (its CMA
transport, process_vm_readv, an intra-node device that UCX_NET_DEVICES does not restrict; UCX_PROTO_INFO=y shows
it); NIXL's notifications, and READs across hosts (UCX over TCP), move only while the target progresses: NIXL's
progress thread does that on the prefill side, blocked on UCX's event fd until bytes arrive (not spinning, as
NIXL's Python API would have it: `_event_driven_agent`). Without NIXL, the bytes travel over the authenticated
channel itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

import numpy as np

NIXL_INSTALL_HINT = "NIXL is not importable ({err}). Install it with `pip install 'disagg[nixl]'`, or run with `--kv-transport http` to move KV over the workers' own connections instead."


def nixl_api():
    """NIXL's Python API: the `nixl` meta-package when installed (it picks the build for the CUDA it finds), else
    whichever single build is (`disagg[nixl]` installs only nixl-cu12, which runs on CPU-only machines too)."""
    import importlib

    errors = []
    for name in ("nixl._api", "nixl_cu12._api", "nixl_cu13._api"):
        try:
            return importlib.import_module(name)
        except ImportError as exc:  # or a broken native library, which ImportError also covers
            errors.append(f"{name}: {exc}")
    raise ImportError("; ".join(errors))


def nixl_available() -> str | None:
    """None when NIXL imports, else why not (for a clear start-up error)."""
    try:
        nixl_api()
    except Exception as exc:
        return str(exc)
    return None


class KVTransferError(Exception):
    """A transfer that did not deliver the right bytes; `reason` is the metric label."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class Arena:
    """A fixed block of host memory carved into regions with a first-fit free list.

    `scrub`: released regions are zeroed (the prefill side, whose regions hold KV that peers are handed). The decode
    side's receive arena is not scrubbed: a region there is only ever written by our own READs and read by our own
    check, and what a previous request left in it cannot pass for this request's KV (the keyed checksum weighs every
    position and word: `mock_kv.KVLayout.verify`); zeroing 8 MiB cost ~0.3 ms per 8,000-token request for nothing."""

    def __init__(self, size: int, scrub: bool = True):
        self.buf = np.zeros(size, dtype=np.uint8)
        self.size = size
        self.scrub = scrub
        self.addr = self.buf.ctypes.data
        self._free: list[tuple[int, int]] = [(0, size)]  # (offset, length), sorted by offset

    def allocate(self, n: int) -> int | None:
        n = max(n, 8)
        for i, (off, length) in enumerate(self._free):
            if length >= n:
                if length == n:
                    self._free.pop(i)
                else:
                    self._free[i] = (off + n, length - n)
                return off
        return None

    def release(self, off: int, n: int) -> None:
        n = max(n, 8)
        if self.scrub:
            self.buf[off : off + n] = 0  # nobody reads another request's KV out of reused memory
        self._free.append((off, n))
        self._free.sort()
        merged: list[tuple[int, int]] = []
        for o, length in self._free:
            if merged and merged[-1][0] + merged[-1][1] == o:
                merged[-1] = (merged[-1][0], merged[-1][1] + length)
            else:
                merged.append((o, length))
        self._free = merged

    def view(self, off: int, n: int) -> np.ndarray:
        return self.buf[off : off + n]

    @property
    def used(self) -> int:
        return self.size - sum(length for _, length in self._free)

    @property
    def largest_free(self) -> int:
        return max((length for _, length in self._free), default=0)


def handle_mac(secret: bytes, handle: dict) -> str:
    """The capability's signature: binds the id to its worker, request, place, size and checksum."""
    msg = "|".join(str(handle[k]) for k in ("kv_id", "worker_id", "request", "start", "tokens", "length", "checksum"))
    msg += "|" + json.dumps(handle.get("layout"), sort_keys=True)  # the layout the KV was made in (runtime/kv_layout.py)
    return hmac.new(secret, msg.encode(), hashlib.sha256).hexdigest()[:32]


def check_handle(secret: bytes, handle: dict, request: str) -> None:
    try:
        ok = hmac.compare_digest(str(handle.get("mac", "")), handle_mac(secret, handle)) and handle["request"] == request
    except KeyError:
        ok = False
    if not ok:
        raise KVTransferError("forged_handle", "the KV handle is not one this run issued for this request")


@dataclass
class StoredKV:
    kv_id: str
    offset: int
    length: int
    created: float
    registration: object = None  # NIXL's handle for the region while it is readable


class KVStore:
    """The prefill side: KV regions waiting to be read.

    A region ends in exactly one place, `release(entry, reason)`: it leaves the table, is withdrawn from NIXL (the
    `withdraw` hook), zeroed and returned to the arena, and reported to `on_release(reason, entry)` (the metrics).
    Every path (read, expired by the sweep or by a reserve that found the arena full, aborted, shutdown) calls it;
    a second release of the same region does nothing. The arena's bytes in use are therefore exactly the regions in
    the table."""

    def __init__(self, arena: Arena, ttl_seconds: float = 30.0, withdraw=None, on_release=None):
        self.arena = arena
        self.ttl = ttl_seconds
        self.entries: dict[str, StoredKV] = {}
        self.withdraw = withdraw or (lambda entry: None)
        self.on_release = on_release or (lambda reason, entry: None)
        self.pending = asyncio.Event()  # set while entries wait: the NIXL progress loop runs only then

    def reserve(self, nbytes: int) -> StoredKV | None:
        """A new region of `nbytes`, or None when the arena has no room even after expired regions are released."""
        off = self.arena.allocate(nbytes)
        if off is None:
            self.expire(time.monotonic())
            off = self.arena.allocate(nbytes)
            if off is None:
                return None
        entry = StoredKV(secrets.token_hex(16), off, nbytes, time.monotonic())
        self.entries[entry.kv_id] = entry
        self.pending.set()
        return entry

    def take(self, kv_id: str) -> StoredKV | None:
        """The waiting entry (still held: the caller releases it once its bytes are sent), or None."""
        return self.entries.get(kv_id)

    def release(self, entry: StoredKV, reason: str) -> bool:
        """End a region: withdraw, zero, free, count. False when it had already ended (nothing is freed twice)."""
        if self.entries.get(entry.kv_id) is not entry:
            return False
        del self.entries[entry.kv_id]
        if not self.entries:
            self.pending.clear()
        try:
            self.withdraw(entry)
        finally:
            self.arena.release(entry.offset, entry.length)
            self.on_release(reason, entry)
        return True

    def release_id(self, kv_id: str, reason: str) -> bool:
        entry = self.entries.get(kv_id)
        return entry is not None and self.release(entry, reason)

    def expire(self, now: float) -> int:
        """Release every region older than the TTL; returns how many."""
        old = [e for e in self.entries.values() if now - e.created > self.ttl]
        for e in old:
            self.release(e, "ttl")
        return len(old)

    def release_all(self, reason: str) -> int:
        entries = list(self.entries.values())
        for e in entries:
            self.release(e, reason)
        return len(entries)

    def largest_free(self) -> int:
        return self.arena.largest_free


PROGRESS_WAKE_US = 100_000  # the progress thread's safety wake-up when no event came (NIXL's poll() timeout)


def _event_driven_agent(api, agent_name: str):
    """A NIXL agent whose UCX progress thread sleeps in poll() on UCX's event fd and wakes when bytes arrive.

    NIXL's UCX backend progresses from a shared thread that polls the worker's event fd with a timeout of
    `pthrDelay` (rounded up to whole ms; ai-dynamo/nixl src/plugins/ucx/ucx_backend.cpp, nixlUcxSharedThread::run).
    Its Python API hard-codes `pthrDelay = 0` (nixl_cu12 1.5 `_api.py`, nixl_agent.__init__): a zero timeout, so the
    thread spins a core even when idle. With a long timeout the same thread blocks until UCX has work, so a peer's
    READ of our memory moves as soon as it arrives (no polling from the event loop), at no cost while idle.
    Returns (agent, True), or (agent without a progress thread, False) where this NIXL build's API does not allow it
    (then the prefill side progresses from its event loop, as before: prefill_kv.py)."""
    bind = getattr(api, "nixlBind", None)
    plain = getattr(bind, "nixlAgentConfig", None)
    try:
        class EventDriven(plain):  # every assignment of pthrDelay, the API's and the default's, becomes ours
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.pthrDelay = PROGRESS_WAKE_US

            def __setattr__(self, key, value):
                super().__setattr__(key, PROGRESS_WAKE_US if key == "pthrDelay" else value)

        bind.nixlAgentConfig = EventDriven
    except Exception:  # a build whose config type cannot be subclassed or is not where 1.5 has it
        return api.nixl_agent(agent_name, api.nixl_agent_config(enable_prog_thread=False, backends=["UCX"])), False
    try:
        return api.nixl_agent(agent_name, api.nixl_agent_config(enable_prog_thread=True, backends=["UCX"])), True
    finally:
        bind.nixlAgentConfig = plain


class NixlTransport:
    """One NIXL agent per process. Regions are registered per request; on the side that is read (`serves_reads`, the
    prefill worker) NIXL's event-driven progress thread answers peers, and the reader progresses its own READs from
    the event loop.

    The reader has no progress thread: it progresses UCX itself each time it checks a READ, and a second thread on
    the same UCX worker only contends with it (with a progress thread NIXL makes its UCX worker
    UCS_THREAD_MODE_MULTI, where both threads take the worker's lock: ai-dynamo/nixl src/utils/ucx/ucx_utils.cpp,
    nixlUcxContext). With the reader's thread, a 200 KiB READ carrying its
    release notice spent 2.7-5.5 ms p50 in `transfer()` in 4 of 7 runs on this 2-core VM (about a scheduler time
    slice: a lock holder descheduled would explain it, not traced further); without it 0.08-0.10 ms (README,
    Performance: what carries the READ)."""

    name = "nixl"

    def __init__(self, agent_name: str, arena: Arena, serves_reads: bool = True):
        try:
            api = nixl_api()
        except Exception as exc:  # ImportError, or a broken native library
            raise RuntimeError(NIXL_INSTALL_HINT.format(err=exc)) from exc
        self.agent_name = agent_name
        self.arena = arena
        if serves_reads:
            # NIXL's progress thread as its Python API sets it up busy-polls a whole core even when idle (seen here: 100%
            # CPU per idle worker); this one sleeps until UCX has work (idle: ~0 CPU; bench/bench_runtime.py --kv-path).
            self.agent, self.event_driven = _event_driven_agent(api, agent_name)
        else:
            self.agent = api.nixl_agent(agent_name, api.nixl_agent_config(enable_prog_thread=False, backends=["UCX"]))
            self.event_driven = False
        self._local = None  # the decode side's receive registration (the whole arena: it is only ever written by us)
        self._known: set[str] = set()
        self.posted_at = 0.0  # when the last READ was posted

    # prefill side
    def expose(self, entry: StoredKV) -> bytes:
        """Register one region and return the partial metadata that lets a peer read it (and nothing else)."""
        desc = [(self.arena.addr + entry.offset, entry.length, 0, "")]
        entry.registration = self.agent.register_memory(desc, "DRAM")
        return self.agent.get_partial_agent_metadata(self.agent.get_reg_descs(desc, "DRAM"), True, ["UCX"])

    def withdraw(self, entry: StoredKV) -> None:
        if entry.registration is not None:
            try:
                self.agent.deregister_memory(entry.registration)
            except Exception:
                pass
            entry.registration = None

    def poll_notifications(self) -> list[bytes]:
        notifs = self.agent.get_new_notifs()
        return [m for msgs in notifs.values() for m in msgs]

    # decode side
    async def read(self, metadata: bytes, remote_addr: int, length: int, local_offset: int, timeout: float, notif: bytes = b"") -> str:
        """READ `length` bytes of the peer's region into our arena; returns the peer's agent name. `notif`: a message
        NIXL hands the peer once the READ has completed (its notification of this transfer; nothing when it fails)."""
        if self._local is None:
            self._local = self.agent.register_memory([(self.arena.addr, self.arena.size, 0, "")], "DRAM")
        try:
            peer = self.agent.add_remote_agent(metadata)
        except Exception as exc:
            raise KVTransferError("nixl_metadata", f"the prefill worker's NIXL metadata was refused: {exc}") from None
        peer = peer.decode() if isinstance(peer, bytes) else peer
        try:
            local = self.agent.get_xfer_descs([(self.arena.addr + local_offset, length, 0)], "DRAM")
            remote = self.agent.get_xfer_descs([(remote_addr, length, 0)], "DRAM")
            handle = self.agent.initialize_xfer("READ", local, remote, peer, notif)
            state = self.agent.transfer(handle)
            self.posted_at = time.perf_counter()  # for bench/bench_runtime.py --kv-path's breakdown
        except Exception as exc:  # NIXL raises its own error types for a peer that went away
            raise KVTransferError("nixl_error", f"NIXL read from {peer} could not start: {type(exc).__name__}: {exc}") from None
        deadline = time.monotonic() + timeout
        polls = 0
        try:
            while state not in ("DONE", "ERR"):
                if time.monotonic() > deadline:
                    raise KVTransferError("timeout", f"NIXL read of {length} bytes from {peer} took over {timeout:.0f} s")
                # Between two processes of one host UCX reads with one copy (CMA: process_vm_readv) inside transfer(),
                # so the first check, at once, usually finds it done (~2 µs, against a turn of the event loop). Then
                # check on every turn of the event loop (other tasks run between checks), backing off to 0.5 ms for
                # reads that take longer (across hosts).
                if polls:
                    await asyncio.sleep(0 if polls < 64 else min(0.00002 * 2 ** ((polls - 64) // 4), 0.0005))
                polls += 1
                try:
                    state = self.agent.check_xfer_state(handle)
                except Exception as exc:
                    raise KVTransferError("nixl_error", f"NIXL read from {peer} failed: {type(exc).__name__}: {exc}") from None
            if state == "ERR":
                raise KVTransferError("nixl_error", f"NIXL read from {peer} failed")
        finally:
            try:
                self.agent.release_xfer_handle(handle)
            except Exception:
                pass
        return peer
