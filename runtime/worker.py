"""A worker process: a decode worker (`VllmWorker`) or a prefill worker (`PrefillWorker`) with the mock engine.

It listens on the run's internal channel only (channel.py: authenticated, loopback unless a multi-host run says
otherwise) and serves, by role:
- both: `health` (liveness and readiness: the engine loop runs and makes progress when work waits), `metrics`
  (its Prometheus text, which the frontend re-exports), `faults` (with --fault-injection);
- prefill: `prefill` (make a prompt's KV, answer a KV handle) and `kv_read` (the bytes, when KV moves over the
  channel instead of NIXL);
- decode: `prefix_match`, and `generate`: read the prefilled KV (or prefill locally), then stream token batches.
A worker that stays unhealthy, or whose event loop stops turning, exits; the supervisor restarts it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import time

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest

from .channel import MAX_PENDING, Channel, ChannelError, RemoteError, address_of, token_ids_of
from .channel_server import ChannelServer, Request
from .identity import run_id
from .kv import Arena, KVTransferError, NixlTransport, check_handle
from .kv_layout import KVLayoutInfo, layout_of, refusal
from .metrics import WorkerMetrics
from .mock_engine import BlockManager, DecodeEngine, EngineStopped, Sequence, Timing
from .mock_kv import KVLayout, combine
from .plan import RuntimePlan, WorkerSpec
from .prefill_kv import PrefillKV, min_remote_prompt_tokens
from .process import Watchdog, run_secret, setup

log = logging.getLogger("disagg.worker")


class Worker:
    def __init__(self, plan: RuntimePlan, spec: WorkerSpec, peers: list[WorkerSpec], secret: bytes, kv_transport: str, timing: Timing,
                 kv_blocks: int, arena_bytes: int, prefill_concurrency: int, fault_injection: bool):
        self.plan, self.spec, self.secret, self.timing = plan, spec, secret, timing
        self.worker_id, self.role = spec.worker_id, spec.role
        self.run_id = run_id(secret)
        self.fault_injection = fault_injection
        self.faults = {"kv_fail": 0, "kv_corrupt": 0, "stall": 0, "kv_stale": 0}
        self._last_kv: int | None = None  # the checksum of the KV last pulled: what `kv_stale` decodes from instead
        self.kv_layout = layout_of(plan, spec.role)  # announced by a prefill worker, the yardstick of a decode worker (kv_layout.py)
        self.registry = CollectorRegistry()
        self.metrics = WorkerMetrics(self.registry, self.worker_id, self.role)
        self.layout = KVLayout(plan.shape, secret)
        # The prefill side's regions are handed to peers and zeroed when they end; the decode side only receives into
        # its arena (runtime/kv.py `Arena`), and only the prefill side is read, so only it runs NIXL's progress thread.
        self.arena = Arena(arena_bytes, scrub=self.role == "prefill")
        self.transport_kind = kv_transport
        self.nixl = (NixlTransport(f"{self.worker_id}-{os.getpid()}", self.arena, serves_reads=self.role == "prefill")
                     if kv_transport == "nixl" else None)
        self.kv = (PrefillKV(self.worker_id, self.arena, self.layout, secret, self.metrics, self.nixl, kv_transport, min_remote_prompt_tokens(plan.policy),
                             announced_layout=self.kv_layout.to_json()) if self.role == "prefill" else None)
        self.blocks = BlockManager(kv_blocks, plan.block_size, plan.enable_prefix_caching and self.role == "decode", self.layout)
        self.engine = DecodeEngine(timing, self.blocks) if self.role == "decode" else None
        self.prefill_slots = asyncio.Semaphore(prefill_concurrency)
        self.prefill_waiting = 0
        self.busy_prefill = 0.0
        self._busy_reported = 0.0
        self.peers = {p.worker_id: p for p in peers if p.role == "prefill"}  # the only workers this one ever contacts
        self._channels: dict[str, Channel] = {}
        self.watchdog: Watchdog | None = None
        self.discovery: tuple[str, str] | None = None  # (etcd URL, namespace) in a multi-host run
        self._deregister = None

    # ---- common ----------------------------------------------------------------------------------------------

    def health(self) -> dict:
        """`healthy`: alive and making progress (the supervisor restarts what is not); `state` "ready" when it can take
        work now, else why not in `reason` (a prefill worker whose KV arena cannot hold a minimum prompt is alive but
        not ready)."""
        ok, why = self.engine.healthy() if self.engine else (True, "ok")
        ready, not_ready = self.kv.readiness() if self.kv is not None else (True, "")
        state = "unhealthy" if not ok else "ready" if ready else "not_ready"
        return {"worker_id": self.worker_id, "role": self.role, "pid": os.getpid(), "device": "cpu", "engine": "mock",
                "state": state, "healthy": ok, "reason": why if not ok or ready else not_ready, "kv_transport": self.transport_kind, "run_id": self.run_id}

    def metrics_text(self) -> bytes:
        busy = self.busy_prefill + (self.engine.busy_seconds if self.engine else 0.0)
        self.metrics.busy.inc(max(busy - self._busy_reported, 0.0))
        self._busy_reported = busy
        if self.engine:
            self.metrics.running.set(len(self.engine.running))
            self.metrics.waiting.set(len(self.engine.waiting))
        else:
            self.metrics.waiting.set(self.prefill_waiting)
        self.metrics.kv_usage.set(self.blocks.usage)
        if self.kv is not None:
            self.kv.update_gauges()
        return generate_latest(self.registry)

    async def handle(self, req: Request) -> None:
        op = req.op
        if op == "health":
            req.send(self.health())
        elif op == "metrics":
            req.send({}, self.metrics_text())
        elif op == "faults":
            if not self.fault_injection:
                raise RemoteError("forbidden", "fault injection is off (start with --fault-injection)")
            for key in self.faults:
                if key in req.header:
                    self.faults[key] = int(req.header[key])
            req.send(dict(self.faults))
        elif op == "prefill" and self.kv is not None:
            await self.prefill(req)
        elif op == "kv_read" and self.kv is not None:
            self.kv.read(req)
        elif op == "kv_release" and self.kv is not None:
            self.kv.release(req)
        elif op == "prefix_match" and self.engine is not None:
            cached, _ = self.blocks.match_prefix(token_ids_of(req.header, req.body)[0], req.header.get("cache_salt", ""))
            req.send({"cached_tokens": cached})
        elif op == "generate" and self.engine is not None:
            await self.generate(req)
        else:
            raise RemoteError("bad_op", f"{self.role} worker has no operation {op!r}")

    # ---- prefill role ----------------------------------------------------------------------------------------

    async def prefill(self, req: Request) -> None:
        h = req.header
        tokens, _ = token_ids_of(h, req.body)  # a uint32 view of the packed ids: the KV is made from it as it is
        start = int(h.get("cached_tokens", 0))
        nbytes = self.layout.nbytes(len(tokens) - start)
        if nbytes > self.arena.size:
            raise RemoteError("kv_too_large", f"{len(tokens) - start} tokens of KV ({nbytes >> 20} MiB) exceed this worker's KV arena ({self.arena.size >> 20} MiB)")
        self.prefill_waiting += 1
        waiting = True
        try:
            async with self.prefill_slots:
                self.prefill_waiting -= 1
                waiting = False
                t0 = time.perf_counter()
                seconds = self.timing.prefill_seconds(len(tokens) - start)
                if seconds:
                    await asyncio.sleep(seconds)
                handle, metadata = self.kv.make(tokens, start, h["request"])
                self.busy_prefill += time.perf_counter() - t0
        finally:
            if waiting:  # the request was cancelled before a slot was free
                self.prefill_waiting -= 1
        self.metrics.requests.inc()
        self.metrics.computed_tokens.inc(len(tokens) - start)
        try:
            req.send({"handle": handle, "end": True}, metadata)
        except BaseException:  # the answer cannot leave: nobody will ever read or release this KV
            self.kv.store.release_id(handle["kv_id"], "aborted")
            raise

    # ---- decode role -----------------------------------------------------------------------------------------

    def _channel(self, worker_id: str) -> Channel:
        spec = self.peers.get(worker_id)
        if spec is None:  # a handle naming a worker outside this run's plan: never contacted
            raise KVTransferError("unknown_worker", f"{worker_id} is not a prefill worker of this run")
        ch = self._channels.get(worker_id)
        if ch is None:
            ch = self._channels[worker_id] = Channel(spec.host, spec.port, self.secret, worker_id)
        return ch

    async def _pull_kv(self, handle: dict, metadata: bytes, tokens, cached: int, request: str, timeout: float) -> int:
        """Read the prefilled KV into our arena and check it; returns its checksum. Raises KVTransferError."""
        check_handle(self.secret, handle, request)
        refused = refusal(self.kv_layout, KVLayoutInfo.from_json(handle.get("layout")))
        if refused is not None:  # as vLLM's NIXL handshake does, before any byte moves
            self.metrics.kv_refused.labels(reason=refused[0]).inc()
            raise KVTransferError("incompatible", f"refused: {refused[1]}")
        if handle["start"] > cached:
            raise KVTransferError("prefix_evicted", "the decode worker no longer holds the prefix the prefill skipped")
        if handle["tokens"] != len(tokens):
            raise KVTransferError("mismatch", "KV was prefilled for another prompt length")
        if self.faults["kv_fail"] > 0:
            self.faults["kv_fail"] -= 1
            raise KVTransferError("injected", "fault injection: transfer failed")
        length = int(handle["length"])
        off = self.arena.allocate(length)
        if off is None:
            raise KVTransferError("no_buffer", "receive arena full")
        try:
            if handle["transport"] == "nixl" and self.nixl is not None:
                # The release notice rides the READ itself: NIXL delivers it to the prefill worker once the READ has
                # completed (so the region is free only after its bytes left), with no send_notif of our own after it.
                # A READ that fails or times out delivers nothing; the frontend's kv_release frees that region.
                await self.nixl.read(metadata, int(handle["addr"]), length, off, timeout, notif=b"release:" + handle["kv_id"].encode())
            else:
                try:
                    _, data = await self._channel(handle["worker_id"]).call("kv_read", timeout=timeout, handle=handle)
                except (ChannelError, RemoteError, asyncio.TimeoutError) as exc:
                    raise KVTransferError("connection", f"{type(exc).__name__}: {exc}") from None
                if len(data) != length:
                    raise KVTransferError("checksum", f"received {len(data)} bytes of KV, expected {length}")
                self.arena.view(off, length)[:] = np.frombuffer(data, dtype=np.uint8)
            view = self.arena.view(off, length)
            if self.faults["kv_corrupt"] > 0 and length:
                self.faults["kv_corrupt"] -= 1
                view[length // 2] ^= 0xFF  # a flipped byte, as a bad link would
            if self.layout.verify(view, int(handle["start"])) != int(handle["checksum"]):
                raise KVTransferError("checksum", "KV checksum mismatch: refusing corrupt KV")
        finally:
            self.arena.release(off, length)
        stale, self._last_kv = self._last_kv, int(handle["checksum"])
        if self.faults["kv_stale"] > 0 and stale is not None:
            # Fault: decode from the previous request's KV without checking it, as vLLM does when it reuses a stale block
            # reference (vllm#52234): the transfer worked, every counter says so, and the answer is another prompt's.
            self.faults["kv_stale"] -= 1
            return stale
        return self._last_kv

    async def generate(self, req: Request) -> None:
        h = req.header
        tokens, metadata = token_ids_of(h, req.body)
        max_tokens = int(h["max_tokens"])
        salt = h.get("cache_salt", "")
        handle = h.get("kv")
        hashes = self.blocks.block_hashes(tokens, salt) if self.blocks.prefix_caching else None  # once: match, then remember
        cached, prefix_sum = self.blocks.match_prefix(tokens, salt, hashes)
        self.metrics.prefix_hits.inc(cached)
        kv_info: dict = {"status": "none"}
        prefill, start, suffix_sum = "local", cached, None
        if handle is not None:
            t0 = time.perf_counter()
            try:
                suffix_sum = await self._pull_kv(handle, metadata, tokens, cached, h.get("request", ""), float(h.get("kv_timeout", 10.0)))
                start, prefill = int(handle["start"]), "remote"
                kv_info = {"status": "ok", "bytes": int(handle["length"]), "seconds": time.perf_counter() - t0, "transport": handle["transport"]}
            except KVTransferError as exc:
                kv_info = {"status": "failed", "reason": exc.reason, "detail": str(exc)}
        if suffix_sum is None:
            suffix_sum = self.layout.checksum(tokens, start)
        if start != cached:
            prefix_sum = self.layout.checksum(tokens, 0, start)
        uncached = len(tokens) - start if prefill == "local" else 0
        self.metrics.requests.inc()
        self.metrics.computed_tokens.inc(uncached)
        req.send({"event": "start", "prefill": prefill, "cached_tokens": start, "computed_tokens": uncached, "kv": kv_info})
        self.blocks.remember(tokens, salt, hashes)  # its blocks are computed now: later prompts may reuse them
        seed = combine(prefix_sum, suffix_sum, int(h.get("seed") or 0))
        seq = Sequence(h.get("request", ""), tokens, max_tokens, seed, uncached)
        try:
            await self.engine.run(seq, lambda token: req.send({"tokens": [token]}))  # sent from the engine loop
        except EngineStopped as exc:
            raise RemoteError("engine_stopped", str(exc)) from None
        req.send({"end": True, "finish_reason": "length"})

    # ---- process ---------------------------------------------------------------------------------------------

    async def run(self, host: str, port: int, listen_fd: int | None = None) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        peer = {"worker_id": self.worker_id, "role": self.role, "pid": os.getpid(), "run_id": self.run_id, "kv_layout": self.kv_layout.to_json()}
        server = ChannelServer(self.handle, self.secret, peer, on_reject=self._rejected, address=address_of(host, port))
        import socket

        registered = []
        if self.discovery is not None:  # before serving: a refused registration (a duplicate id) ends the start here
            from .discovery import DiscoveryError

            try:
                registered = await self._register(*self.discovery)
            except DiscoveryError as exc:
                log.error("%s", exc)
                raise SystemExit(2 if exc.reason == "duplicate_id" else 1) from None
        listener = await server.start(host, port, socket.socket(fileno=listen_fd) if listen_fd is not None else None)
        tasks = []
        if self.engine:
            self.engine.start()
        if self.kv is not None:
            tasks.append(loop.create_task(self.kv.progress()))
        tasks.append(loop.create_task(self._heartbeat()))
        tasks += registered
        try:
            await stop.wait()
        finally:
            listener.close()
            if self._deregister is not None:
                await self._deregister.close()  # peers drop this worker now, not after the lease's TTL
            for t in tasks:
                t.cancel()
            for ch in self._channels.values():
                ch.close()
            if self.kv is not None:
                self.kv.shutdown()  # zeroed and withdrawn from NIXL before the process goes

    async def _register(self, etcd_url: str, namespace: str) -> list[asyncio.Task]:
        """Register in etcd (multi-host); a decode worker also follows the prefill workers it may read KV from."""
        from .discovery import Etcd, Registration, Watcher, key_prefix, registered, registration_value, spec_of

        etcd = Etcd(etcd_url)
        prefix = key_prefix(namespace, self.plan.served_model_name)
        s = self.spec
        reg = Registration(etcd, f"{prefix}{self.role}/{self.worker_id}",
                           registration_value(self.worker_id, self.role, s.host, s.port, self.run_id, s.kv_address, kv_transport=self.transport_kind),
                           self.secret)
        await reg.start()
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(reg.keep())]
        if self.role == "decode":
            def put(key: str, value: dict) -> None:
                if registered(self.secret, prefix, key, value) is None and (spec := spec_of("prefill", value)) is not None:
                    if self.peers.get(spec.worker_id) != spec:
                        ch = self._channels.pop(spec.worker_id, None)
                        if ch is not None:
                            ch.close()
                    self.peers[spec.worker_id] = spec

            def delete(key: str) -> None:
                # Kept: the peer is contacted only for a KV handle it signed, over a handshake bound to its id and
                # address, and a key that vanished (etcd restarted empty, or deleted) comes back within seconds.
                pass

            tasks.append(loop.create_task(Watcher(etcd, prefix + "prefill/", put, delete).run()))
        self._deregister = reg
        return tasks

    def _rejected(self, reason: str) -> None:
        self.metrics.rejected.inc()
        log.warning("refused a connection: %s", {"auth": "its proof is not for this run's secret, this worker id and this address",
                                                  "busy": f"too many connections in handshake (over {MAX_PENDING}): the oldest was dropped",
                                                  "handshake": "it broke or did not finish the handshake in time"}.get(reason, reason))

    async def _heartbeat(self) -> None:
        unhealthy_since = None
        while True:
            await asyncio.sleep(1.0)
            if self.faults.get("stall"):
                time.sleep(self.faults["stall"])  # fault injection: a wedged event loop (the watchdog's case)
                self.faults["stall"] = 0
            if self.watchdog:
                self.watchdog.beat()
            ok, why = self.engine.healthy() if self.engine else (True, "")
            if ok:
                unhealthy_since = None
            elif unhealthy_since is None:
                unhealthy_since = time.monotonic()
            elif time.monotonic() - unhealthy_since > 2 * DecodeEngine.STALL_SECONDS:
                log.error("unhealthy for %.0f s (%s): exiting so that the supervisor restarts this worker", time.monotonic() - unhealthy_since, why)
                os._exit(3)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="disagg-worker")
    ap.add_argument("--plan-file", required=True)
    ap.add_argument("--workers-file", required=True)
    ap.add_argument("--worker-id", required=True)
    ap.add_argument("--kv-transport", choices=("nixl", "channel"), required=True)
    ap.add_argument("--timing", default="{}")
    ap.add_argument("--kv-blocks", type=int, default=8192)
    ap.add_argument("--arena-mb", type=int, default=256)
    ap.add_argument("--prefill-concurrency", type=int, default=1)
    ap.add_argument("--fault-injection", action="store_true")
    ap.add_argument("--listen-fd", type=int, help="a listening socket handed over by the supervisor")
    ap.add_argument("--discovery", help="etcd://HOST:PORT: register there (multi-host)")
    ap.add_argument("--namespace", default="disagg")
    args = ap.parse_args(argv)
    setup(args.worker_id)
    secret = run_secret()
    with open(args.plan_file, encoding="utf-8") as handle:
        plan = RuntimePlan.from_json(handle.read())
    with open(args.workers_file, encoding="utf-8") as handle:
        specs = [WorkerSpec(**w) for w in json.load(handle)]
    spec = next(s for s in specs if s.worker_id == args.worker_id)
    worker = Worker(plan, spec, specs, secret, args.kv_transport, Timing(**json.loads(args.timing)), args.kv_blocks, args.arena_mb * 2**20,
                    args.prefill_concurrency, args.fault_injection)
    worker.watchdog = Watchdog()
    if args.discovery:
        worker.discovery = (args.discovery, args.namespace)
    asyncio.run(worker.run(spec.host, spec.port, args.listen_fd))


if __name__ == "__main__":
    main()


