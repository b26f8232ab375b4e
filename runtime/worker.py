"""A worker process: a decode worker (`VllmWorker`) or a prefill worker (`PrefillWorker`) with the mock engine.

Each worker serves HTTP on loopback for the frontend: `/health`, `/metrics`, `/nixl/metadata`, and by role
`/prefill` (prefill) or `/prefix_match` and `/generate` (decode). `/generate` streams newline-delimited JSON: a
`start` event saying where the prompt was prefilled and how the KV transfer went, one `token` event per token,
then `end`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time

import numpy as np
from aiohttp import ClientSession, ClientTimeout, web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .identity import current_run_id
from .kv import Arena, KVStore, KVTransferError, NixlTransport
from .metrics import WorkerMetrics
from .mock_engine import BlockManager, DecodeEngine, Sequence, Timing, kv_checksum, kv_for_tokens
from .plan import RuntimePlan


def set_parent_death_signal() -> None:
    """Linux: die with the supervisor, so a SIGKILLed `disagg serve` leaves no orphan workers."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Worker:
    def __init__(self, plan: RuntimePlan, worker_id: str, role: str, kv_transport: str, timing: Timing, kv_blocks: int, arena_bytes: int, prefill_concurrency: int,
                 fault_injection: bool, kv_refusals: dict[str, str] | None = None):
        self.plan = plan
        self.worker_id = worker_id
        self.role = role
        self.timing = timing
        self.fault_injection = fault_injection
        self.faults = {"kv_fail": 0, "kv_corrupt": 0}
        self.registry = CollectorRegistry()
        self.metrics = WorkerMetrics(self.registry, worker_id, role)
        self.run_id = current_run_id()
        self.kv_refusals = kv_refusals or {}  # reason -> why: KV exchanges vLLM's handshake would refuse (the doctor's DG203-206)
        self.arena = Arena(arena_bytes)
        self.agent_name = f"{worker_id}-{os.getpid()}"
        self.transport_kind = kv_transport
        self.nixl = NixlTransport(self.agent_name, self.arena) if kv_transport == "nixl" else None
        self.store = KVStore(self.arena) if role == "prefill" else None
        self.blocks = BlockManager(kv_blocks, plan.block_size, prefix_caching=plan.enable_prefix_caching and role == "decode")
        self.engine = DecodeEngine(plan.shape, timing, self.blocks) if role == "decode" else None
        self.prefill_slots = asyncio.Semaphore(prefill_concurrency)
        self.prefill_waiting = 0
        self.busy_prefill = 0.0
        self.session: ClientSession | None = None
        self._busy_reported = 0.0

    # ---- common ----------------------------------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({
            "worker_id": self.worker_id, "role": self.role, "pid": os.getpid(), "device": "cpu", "engine": "mock",
            "state": "ready", "kv_transport": self.transport_kind, "agent": self.agent_name, "run_id": self.run_id,
        })

    async def metrics_handler(self, request: web.Request) -> web.Response:
        busy = self.busy_prefill + (self.engine.busy_seconds if self.engine else 0.0)
        self.metrics.busy.inc(max(busy - self._busy_reported, 0.0))
        self._busy_reported = busy
        if self.engine:
            self.metrics.running.set(len(self.engine.running))
            self.metrics.waiting.set(len(self.engine.waiting))
        else:
            self.metrics.waiting.set(self.prefill_waiting)
        self.metrics.kv_usage.set(self.blocks.usage)
        if self.store:
            self.metrics.kv_pending.set(len(self.store.entries))
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def nixl_metadata(self, request: web.Request) -> web.Response:
        if self.nixl is None:
            return web.json_response({"error": "this worker moves KV over http, not NIXL"}, status=404)
        return web.Response(body=self.nixl.metadata(), headers={"X-Agent-Name": self.agent_name}, content_type="application/octet-stream")

    async def set_faults(self, request: web.Request) -> web.Response:
        if not self.fault_injection:
            return web.json_response({"error": "fault injection is off (start with --fault-injection)"}, status=403)
        body = await request.json()
        for key in self.faults:
            if key in body:
                self.faults[key] = int(body[key])
        return web.json_response(self.faults)

    # ---- prefill role --------------------------------------------------------------------------------------

    async def prefill(self, request: web.Request) -> web.Response:
        body = await request.json()
        tokens: list[int] = body["tokens"]
        start = int(body.get("cached_tokens", 0))
        self.prefill_waiting += 1
        waiting = True
        try:
            async with self.prefill_slots:
                self.prefill_waiting -= 1
                waiting = False
                t0 = time.perf_counter()
                await asyncio.sleep(self.timing.prefill_seconds(len(tokens) - start))
                kv = kv_for_tokens(tokens, start, self.plan.shape)
                crc = kv_checksum(kv)
                self.busy_prefill += time.perf_counter() - t0
        finally:
            if waiting:  # the client went away before a slot was free
                self.prefill_waiting -= 1
        stored = self.store.put(kv, crc)
        if stored is None:
            return web.json_response({"error": "KV arena full"}, status=503)
        kv_id, entry = stored
        self.metrics.requests.inc()
        self.metrics.computed_tokens.inc(len(tokens) - start)
        return web.json_response({
            "kv_id": kv_id, "agent": self.agent_name, "addr": self.arena.addr + entry.offset, "length": entry.length,
            "crc": crc, "cached_tokens": start, "tokens": len(tokens), "transport": self.transport_kind,
        })

    async def kv_bytes(self, request: web.Request) -> web.StreamResponse:
        entry = self.store.get(request.match_info["kv_id"])
        if entry is None:
            return web.json_response({"error": "no such KV (expired or already read)"}, status=404)
        return web.Response(body=self.arena.buf[entry.offset : entry.offset + entry.length].tobytes(), content_type="application/octet-stream")

    async def kv_release(self, request: web.Request) -> web.Response:
        ok = self.store.release(request.match_info["kv_id"])
        return web.json_response({"released": ok})

    async def housekeeping(self) -> None:
        """Free KV whose reader said so (NIXL notifications) and KV nobody came for (expiry)."""
        while True:
            # Without NIXL's progress thread this loop is what progresses the agent (connection set-up, reads of
            # our memory): poll fast while prefilled KV waits to be read, slowly when there is none.
            await asyncio.sleep(0.0005 if self.store.entries else 0.02)
            if self.nixl is not None:
                for msg in self.nixl.poll_notifications():
                    if msg.startswith(b"release:"):
                        self.store.release(msg[8:].decode())
            expired = self.store.expire(time.monotonic())
            if expired:
                self.metrics.kv_expired.inc(expired)

    # ---- decode role ---------------------------------------------------------------------------------------

    async def prefix_match(self, request: web.Request) -> web.Response:
        body = await request.json()
        cached, _ = self.blocks.match_prefix(body["tokens"])
        return web.json_response({"cached_tokens": cached})

    def _prefix_crc(self, tokens: list[int], n: int) -> int:
        if n <= 0:
            return 0
        return self.blocks.cache[self.blocks.block_hashes(tokens)[n // self.blocks.block_size - 1]]

    async def _pull_kv(self, kv: dict, tokens: list[int], cached: int) -> tuple[np.ndarray, dict]:
        """Read the prefill worker's KV into our arena, verify its checksum; raise KVTransferError on any failure."""
        for reason, why in self.kv_refusals.items():  # as vLLM's NIXL handshake does, before any byte moves
            self.metrics.kv_refused.labels(reason=reason).inc()
            raise KVTransferError("incompatible", f"refused: {why}")
        if kv["cached_tokens"] > cached:
            raise KVTransferError("prefix_evicted", "the decode worker no longer holds the prefix the prefill skipped")
        if kv["tokens"] != len(tokens):
            raise KVTransferError("mismatch", "KV was prefilled for another prompt length")
        if self.faults["kv_fail"] > 0:
            self.faults["kv_fail"] -= 1
            raise KVTransferError("injected", "fault injection: transfer failed")
        length = int(kv["length"])
        t0 = time.perf_counter()
        off = self.arena.allocate(length)
        if off is None:
            raise KVTransferError("no_buffer", "receive arena full")
        try:
            if kv["transport"] == "nixl" and self.nixl is not None:
                if not self.nixl.knows(kv["agent"]):
                    async with self.session.get(f"{kv['url']}/nixl/metadata") as r:
                        if r.status != 200:
                            raise KVTransferError("handshake", f"no NIXL metadata from {kv['url']} (HTTP {r.status})")
                        meta = await r.read()
                    self.nixl.add_remote(meta)
                await asyncio.to_thread(self.nixl.read, kv["agent"], int(kv["addr"]), length, off)
                data = self.arena.buf[off : off + length].copy()
                try:
                    self.nixl.notify(kv["agent"], b"release:" + kv["kv_id"].encode())
                except Exception:
                    pass  # the prefill worker's expiry frees it
            else:
                try:
                    async with self.session.get(f"{kv['url']}/kv/{kv['kv_id']}") as r:
                        if r.status != 200:
                            raise KVTransferError("not_found", f"prefill worker answered HTTP {r.status}")
                        data = np.frombuffer(await r.read(), dtype=np.uint8).copy()
                    async with self.session.delete(f"{kv['url']}/kv/{kv['kv_id']}"):
                        pass
                except (OSError, asyncio.TimeoutError) as exc:
                    raise KVTransferError("connection", str(exc)) from None
        except (OSError, asyncio.TimeoutError) as exc:
            raise KVTransferError("connection", str(exc) or type(exc).__name__) from None
        finally:
            self.arena.release(off, length)
        seconds = time.perf_counter() - t0
        if self.faults["kv_corrupt"] > 0 and data.size:
            self.faults["kv_corrupt"] -= 1
            data[data.size // 2] ^= 0xFF  # a flipped byte, as a bad link would
        if data.size != length or kv_checksum(data) != int(kv["crc"]):
            raise KVTransferError("checksum", "KV checksum mismatch: refusing corrupt KV")
        return data, {"status": "ok", "bytes": length, "seconds": seconds, "transport": kv["transport"]}

    async def generate(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        tokens: list[int] = body["tokens"]
        max_tokens = int(body["max_tokens"])
        kv = body.get("kv")
        cached, _ = self.blocks.match_prefix(tokens)
        self.metrics.prefix_hits.inc(cached)
        kv_info: dict = {"status": "none"}
        prefill = "local"
        start, suffix = cached, None
        if kv is not None:
            try:
                suffix, kv_info = await self._pull_kv(kv, tokens, cached)
                start = int(kv["cached_tokens"])
                prefill = "remote"
            except KVTransferError as exc:
                kv_info = {"status": "failed", "reason": exc.reason, "detail": str(exc)}
        if suffix is None:
            suffix = kv_for_tokens(tokens, start, self.plan.shape)
        prefix_crc = self._prefix_crc(tokens, start)
        full_crc = kv_checksum(suffix, prefix_crc)
        uncached = len(tokens) - start if prefill == "local" else 0
        self.blocks.remember(tokens, suffix, start, prefix_crc, self.plan.shape)
        self.metrics.requests.inc()
        self.metrics.computed_tokens.inc(uncached)
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        start_event = {"type": "start", "prefill": prefill, "cached_tokens": start, "computed_tokens": uncached, "kv": kv_info, "kv_crc": full_crc}
        await resp.write((json.dumps(start_event) + "\n").encode())
        seq = Sequence(body.get("request_id", ""), tokens, max_tokens, full_crc, uncached, asyncio.Queue())
        try:
            async for token in self.engine.generate(seq):
                await resp.write((json.dumps({"type": "token", "id": token}) + "\n").encode())
            await resp.write(b'{"type": "end", "finish_reason": "length"}\n')
        except (ConnectionResetError, asyncio.CancelledError):
            self.engine.cancel(seq)
            raise
        return resp

    # ---- app -----------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_get("/health", self.health)
        app.router.add_get("/metrics", self.metrics_handler)
        app.router.add_get("/nixl/metadata", self.nixl_metadata)
        app.router.add_post("/debug/faults", self.set_faults)
        if self.role == "prefill":
            app.router.add_post("/prefill", self.prefill)
            app.router.add_get("/kv/{kv_id}", self.kv_bytes)
            app.router.add_delete("/kv/{kv_id}", self.kv_release)
        else:
            app.router.add_post("/prefix_match", self.prefix_match)
            app.router.add_post("/generate", self.generate)

        async def on_startup(app: web.Application) -> None:
            self.session = ClientSession(timeout=ClientTimeout(total=30, connect=2))
            if self.engine:
                self.engine.start()
            if self.store:
                app["housekeeping"] = asyncio.get_running_loop().create_task(self.housekeeping())

        async def on_cleanup(app: web.Application) -> None:
            if self.session:
                await self.session.close()

        app.on_startup.append(on_startup)
        app.on_cleanup.append(on_cleanup)
        return app


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="disagg-worker")
    ap.add_argument("--plan-file", required=True)
    ap.add_argument("--worker-id", required=True)
    ap.add_argument("--role", choices=("decode", "prefill"), required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--kv-transport", choices=("nixl", "http"), required=True)
    ap.add_argument("--timing", default="{}")
    ap.add_argument("--kv-blocks", type=int, default=8192)
    ap.add_argument("--arena-mb", type=int, default=256)
    ap.add_argument("--prefill-concurrency", type=int, default=1)
    ap.add_argument("--fault-injection", action="store_true")
    ap.add_argument("--refuse-kv", default="{}", help="JSON reason -> message: KV exchanges this decode worker refuses")
    args = ap.parse_args(argv)
    set_parent_death_signal()
    with open(args.plan_file, encoding="utf-8") as handle:
        plan = RuntimePlan.from_json(handle.read())
    timing = Timing(**json.loads(args.timing))
    worker = Worker(plan, args.worker_id, args.role, args.kv_transport, timing, args.kv_blocks, args.arena_mb * 2**20, args.prefill_concurrency, args.fault_injection,
                    json.loads(args.refuse_kv))
    web.run_app(worker.app(), host=args.host, port=args.port, print=None, access_log=None, handle_signals=True, reuse_address=True)


if __name__ == "__main__":
    main()
