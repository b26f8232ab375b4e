"""Moving KV cache between worker processes: a registered memory arena on each side and a transport that reads it.

`NixlTransport` is the real thing: each worker process owns one NIXL agent (UCX backend, DRAM), registers its
arena once, and publishes its agent metadata; the decode worker READs the prefill worker's blocks straight from its
memory and then sends a NIXL notification so the prefill worker frees them. `HttpTransport` moves the same bytes
over the workers' HTTP servers: what `disagg serve` uses when NIXL is not installed (it says so at start), or when
named (`--kv-transport http`).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

import numpy as np

NIXL_INSTALL_HINT = "NIXL is not importable ({err}). Install it with `pip install 'disagg[nixl]'`, or run with `--kv-transport http` to move KV over HTTP instead."


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


class KVTransferError(Exception):
    """A transfer that did not deliver the right bytes; `reason` is the metric label."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class Arena:
    """A fixed block of host memory carved into regions with a first-fit free list."""

    def __init__(self, size: int):
        self.buf = np.zeros(size, dtype=np.uint8)  # zeroed: every page is touched once, before registration
        self.size = size
        self._free: list[tuple[int, int]] = [(0, size)]  # (offset, length), sorted by offset
        self._lock = threading.Lock()

    @property
    def addr(self) -> int:
        return self.buf.ctypes.data

    def allocate(self, n: int) -> int | None:
        n = max(n, 1)
        with self._lock:
            for i, (off, length) in enumerate(self._free):
                if length >= n:
                    if length == n:
                        self._free.pop(i)
                    else:
                        self._free[i] = (off + n, length - n)
                    return off
        return None

    def release(self, off: int, n: int) -> None:
        n = max(n, 1)
        with self._lock:
            self._free.append((off, n))
            self._free.sort()
            merged: list[tuple[int, int]] = []
            for o, length in self._free:
                if merged and merged[-1][0] + merged[-1][1] == o:
                    merged[-1] = (merged[-1][0], merged[-1][1] + length)
                else:
                    merged.append((o, length))
            self._free = merged

    @property
    def used(self) -> int:
        with self._lock:
            return self.size - sum(length for _, length in self._free)


@dataclass
class StoredKV:
    offset: int
    length: int
    crc: int
    created: float


class KVStore:
    """The prefill side: KV blocks waiting to be read, freed on the reader's notice or when they expire unread."""

    def __init__(self, arena: Arena, ttl_seconds: float = 30.0):
        self.arena = arena
        self.ttl = ttl_seconds
        self.entries: dict[str, StoredKV] = {}
        self.expired = 0  # read by nobody before the TTL: the decode side never came for them
        self._lock = threading.Lock()

    def put(self, data: np.ndarray, crc: int) -> tuple[str, StoredKV] | None:
        off = self.arena.allocate(data.size)
        if off is None:
            self.expire(now=time.monotonic(), force=True)
            off = self.arena.allocate(data.size)
            if off is None:
                return None
        self.arena.buf[off : off + data.size] = data
        kv_id = uuid.uuid4().hex
        entry = StoredKV(off, int(data.size), crc, time.monotonic())
        with self._lock:
            self.entries[kv_id] = entry
        return kv_id, entry

    def get(self, kv_id: str) -> StoredKV | None:
        with self._lock:
            return self.entries.get(kv_id)

    def release(self, kv_id: str) -> bool:
        with self._lock:
            entry = self.entries.pop(kv_id, None)
        if entry is None:
            return False
        self.arena.release(entry.offset, entry.length)
        return True

    def expire(self, now: float, force: bool = False) -> int:
        with self._lock:
            old = [k for k, e in self.entries.items() if force or now - e.created > self.ttl]
        n = 0
        for k in old:
            if self.release(k):
                n += 1
        self.expired += n
        return n


class NixlTransport:
    """One NIXL agent per process over a registered arena. Calls are serialised: one agent, many asyncio tasks."""

    name = "nixl"

    def __init__(self, agent_name: str, arena: Arena):
        try:
            api = nixl_api()
            nixl_agent, nixl_agent_config = api.nixl_agent, api.nixl_agent_config
        except Exception as exc:  # ImportError, or a broken native library
            raise RuntimeError(NIXL_INSTALL_HINT.format(err=exc)) from exc
        self.agent_name = agent_name
        self.arena = arena
        self._lock = threading.Lock()
        # No progress thread: NIXL's busy-polls a whole core even when idle (seen here: 100% CPU per idle worker),
        # which starves the engines and makes an idle prefill worker look busy. Transfers progress when we poll
        # their state, and notifications when we poll for them.
        self.agent = nixl_agent(agent_name, nixl_agent_config(enable_prog_thread=False, backends=["UCX"]))
        # Registration takes 4-tuples (addr, len, device, meta); transfer descriptors take 3-tuples.
        self._reg = self.agent.register_memory([(arena.addr, arena.size, 0, "")], "DRAM")
        self._remotes: set[str] = set()

    def metadata(self) -> bytes:
        with self._lock:
            return self.agent.get_agent_metadata()

    def knows(self, remote_agent: str) -> bool:
        return remote_agent in self._remotes

    def add_remote(self, metadata: bytes) -> str:
        with self._lock:
            name = self.agent.add_remote_agent(metadata)
        name = name.decode() if isinstance(name, bytes) else name
        self._remotes.add(name)
        return name

    def forget(self, remote_agent: str) -> None:
        with self._lock:
            if remote_agent in self._remotes:
                self._remotes.discard(remote_agent)
                try:
                    self.agent.remove_remote_agent(remote_agent)
                except Exception:
                    pass

    def read(self, remote_agent: str, remote_addr: int, length: int, local_offset: int, timeout: float = 10.0) -> None:
        """Blocking READ of `length` bytes from the remote agent's memory into our arena (run it in a thread)."""
        with self._lock:
            local = self.agent.get_xfer_descs([(self.arena.addr + local_offset, length, 0)], "DRAM")
            remote = self.agent.get_xfer_descs([(remote_addr, length, 0)], "DRAM")
            # A fresh handle per transfer: reusing one across transfers is what broke here.
            handle = self.agent.initialize_xfer("READ", local, remote, remote_agent)
            state = self.agent.transfer(handle)
        deadline = time.monotonic() + timeout
        try:
            while state not in ("DONE", "ERR"):
                if time.monotonic() > deadline:
                    raise KVTransferError("timeout", f"NIXL read of {length} bytes from {remote_agent} took over {timeout:.0f} s")
                time.sleep(0.0001)
                with self._lock:
                    state = self.agent.check_xfer_state(handle)
            if state == "ERR":
                raise KVTransferError("nixl_error", f"NIXL read from {remote_agent} failed")
        finally:
            with self._lock:
                try:
                    self.agent.release_xfer_handle(handle)
                except Exception:
                    pass

    def notify(self, remote_agent: str, message: bytes) -> None:
        with self._lock:
            self.agent.send_notif(remote_agent, message)

    def poll_notifications(self) -> list[bytes]:
        with self._lock:
            notifs = self.agent.get_new_notifs()
        return [m for msgs in notifs.values() for m in msgs]


def nixl_available() -> str | None:
    """None when NIXL imports, else why not (for a clear start-up error)."""
    try:
        nixl_api()
    except Exception as exc:
        return str(exc)
    return None
