"""The frontend process: OpenAI-compatible HTTP API, the conditional-disaggregation router and the prefill queue.

For each request it picks a decode worker, asks `schemas.routing.should_prefill_remote` (the same function the
doctor predicts with) whether to prefill remotely, and if so puts the request on a bounded prefill queue that the
prefill workers drain. The prefill result (a handle to KV in the prefill worker's memory) goes to the decode worker,
which reads the KV over NIXL and decodes. Any failure on the remote path falls back to a local prefill on the decode
worker, counted by reason: a request is never lost and never waits forever.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import ValidationError

from disagg.schemas.routing import should_prefill_remote

from .backends import KVLoadFailed, MockBackend, gather_engine_metrics
from .identity import current_run_id
from .metrics import FrontendMetrics
from .openai_api import (
    ChatCompletionRequest,
    CompletionRequest,
    completion_id,
    completion_response,
    error_body,
    stream_chunk,
    validation_message,
)
from .plan import RuntimePlan, WorkerSpec
from .worker import set_parent_death_signal

NET_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


class RequestFailed(Exception):
    def __init__(self, status: int, message: str, code: str):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class PrefillFailed(Exception):
    pass


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

    def to_json(self) -> dict:
        s = self.spec
        return {
            "id": s.worker_id, "role": s.role, "pid": self.pid, "device": self.device, "url": s.url,
            "metrics_url": f"{s.url}/metrics", "up": self.up, "state": self.state, "last_error": self.last_error,
            "inflight": self.inflight, "requests": self.requests, "restarts": self.restarts,
        }


@dataclass
class PrefillJob:
    tokens: list[int]
    cached_tokens: int
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


class Frontend:
    def __init__(self, plan: RuntimePlan, workers: list[WorkerSpec], registry: CollectorRegistry | None = None, prefill_concurrency: int = 1,
                 prefill_timeout: float = 10.0, decode_timeout: float = 60.0, fault_injection: bool = False, backend=None):
        self.plan = plan
        self.run_id = current_run_id()
        self.backend = backend or MockBackend()
        self.policy = plan.policy
        self.registry = registry or CollectorRegistry()
        self.metrics = FrontendMetrics(self.registry)
        self.workers = {w.worker_id: WorkerState(w) for w in workers}
        self.prefill_concurrency = prefill_concurrency
        self.prefill_timeout = prefill_timeout
        self.decode_timeout = decode_timeout
        self.fault_injection = fault_injection
        self.queue: deque[PrefillJob] = deque()
        self._dispatch_wake = asyncio.Event()
        self._rr = itertools.count()
        self.session: aiohttp.ClientSession | None = None
        p = self.policy
        self.metrics.policy.labels(str(p.remote_prefill).lower(), str(p.conditional_disagg).lower(), str(p.max_local_prefill_length), str(p.max_prefill_queue_size)).set(1)
        for w in self.workers.values():
            self.metrics.worker_up.labels(w.spec.worker_id, w.spec.role).set(0)
            self.metrics.worker_requests.labels(w.spec.worker_id, w.spec.role)
            self.metrics.worker_restarts.labels(w.spec.worker_id, w.spec.role)

    def of_role(self, role: str) -> list[WorkerState]:
        return [w for w in self.workers.values() if w.spec.role == role]

    # ---- worker health ---------------------------------------------------------------------------------------

    async def monitor(self, interval: float = 0.25) -> None:
        while True:
            await asyncio.gather(*(self._check(w) for w in self.workers.values()))
            await asyncio.sleep(interval)

    async def _check(self, w: WorkerState) -> None:
        try:
            info = await self.backend.health(self.session, w.spec.url)
            self._mark_up(w, info)
        except (*NET_ERRORS, ValueError) as exc:
            self._mark_down(w, f"health check failed: {type(exc).__name__}")

    def _mark_up(self, w: WorkerState, info: dict) -> None:
        pid = info.get("pid")
        if w.pid is not None and pid != w.pid:
            w.restarts += 1
            self.metrics.worker_restarts.labels(w.spec.worker_id, w.spec.role).inc()
            try:
                self.metrics.worker_info.remove(w.spec.worker_id, w.spec.role, str(w.pid), w.device)
            except KeyError:
                pass
        w.pid, w.device, w.state, w.up, w.seen_up = pid, info.get("device", "cpu"), info.get("state", "ready"), True, True
        w.last_error = None
        self.metrics.worker_info.labels(w.spec.worker_id, w.spec.role, str(pid), w.device).set(1)
        self.metrics.worker_up.labels(w.spec.worker_id, w.spec.role).set(1)
        if w.spec.role == "prefill":
            self._dispatch_wake.set()

    def _mark_down(self, w: WorkerState, why: str) -> None:
        was_up = w.up
        w.up, w.state, w.last_error = False, "down" if w.seen_up else "starting", why
        self.metrics.worker_up.labels(w.spec.worker_id, w.spec.role).set(0)
        if was_up and w.spec.role == "prefill" and not any(p.up for p in self.of_role("prefill")):
            self._fail_queue("no prefill worker is alive")

    # ---- prefill queue ---------------------------------------------------------------------------------------

    def _fail_queue(self, why: str) -> None:
        while self.queue:
            job = self.queue.popleft()
            if not job.future.done():
                job.future.set_exception(PrefillFailed(why))
        self.metrics.queue_size.set(0)

    async def dispatcher(self) -> None:
        while True:
            await self._dispatch_wake.wait()
            self._dispatch_wake.clear()
            while self.queue:
                idle = [w for w in self.of_role("prefill") if w.up and w.inflight < self.prefill_concurrency]
                if not idle:
                    break
                worker = min(idle, key=lambda w: w.inflight)
                job = self.queue.popleft()
                self.metrics.queue_size.set(len(self.queue))
                if job.future.done():  # its requester gave up waiting
                    continue
                self.metrics.queue_wait.observe(time.perf_counter() - job.enqueued)
                worker.inflight += 1
                asyncio.get_running_loop().create_task(self._run_prefill(worker, job))

    async def _run_prefill(self, w: WorkerState, job: PrefillJob) -> None:
        w.requests += 1
        self.metrics.worker_requests.labels(w.spec.worker_id, "prefill").inc()
        try:
            try:
                result = await self.backend.prefill(self.session, w.spec.url, job.tokens, job.cached_tokens, self.prefill_timeout)
            except RuntimeError as exc:
                raise PrefillFailed(f"{w.spec.worker_id}: {exc}") from None
            result["url"] = w.spec.url
            result["worker_id"] = w.spec.worker_id
            if not job.future.done():
                job.future.set_result(result)
        except (PrefillFailed, *NET_ERRORS) as exc:
            if isinstance(exc, NET_ERRORS) and not isinstance(exc, asyncio.TimeoutError):
                self._mark_down(w, f"prefill request failed: {type(exc).__name__}")
            if not job.future.done():
                job.future.set_exception(PrefillFailed(f"{w.spec.worker_id}: {exc or type(exc).__name__}"))
        finally:
            w.inflight -= 1
            self._dispatch_wake.set()

    async def remote_prefill(self, tokens: list[int], cached: int) -> dict:
        if not any(w.up for w in self.of_role("prefill")):
            raise PrefillFailed("no prefill worker is alive")
        job = PrefillJob(tokens, cached, asyncio.get_running_loop().create_future())
        self.queue.append(job)
        self.metrics.queue_size.set(len(self.queue))
        self._dispatch_wake.set()
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), timeout=self.prefill_timeout)
        except asyncio.TimeoutError:
            if job in self.queue:
                self.queue.remove(job)
                self.metrics.queue_size.set(len(self.queue))
            job.future.cancel()
            raise PrefillFailed(f"no prefill result within {self.prefill_timeout:.0f} s") from None

    # ---- routing ---------------------------------------------------------------------------------------------

    def pick_decode(self, exclude: set[str]) -> WorkerState:
        up = [w for w in self.of_role("decode") if w.up and w.spec.worker_id not in exclude]
        if not up:
            raise RequestFailed(503, "no decode worker is up; see /workers", "no_decode_worker")
        if self.plan.router == "random":
            return random.choice(up)
        if self.plan.router == "kv":  # least loaded
            return min(up, key=lambda w: (w.inflight, w.requests))
        return up[next(self._rr) % len(up)]

    async def _cached_tokens(self, decode: WorkerState, tokens: list[int]) -> int:
        if not (self.plan.enable_prefix_caching and self.policy.remote_prefill):
            return 0
        try:
            return await self.backend.prefix_hit(self.session, decode.spec.url, tokens)
        except (*NET_ERRORS, ValueError, KeyError):
            return 0

    async def serve(self, tokens: list[int], max_tokens: int, arrived: float, sampling: dict | None = None) -> AsyncIterator[tuple[str, object]]:
        """Route and run one request; yields ("start", info), ("text", piece)..., ("end", finish_reason)."""
        sampling = sampling or {}
        self.metrics.prompt_len.observe(len(tokens))
        tried: set[str] = set()
        decision = None
        kv = None
        reason = None
        prefill_worker = None
        for attempt in range(2):
            decode = self.pick_decode(tried)
            tried.add(decode.spec.worker_id)
            if decision is None:
                cached = await self._cached_tokens(decode, tokens)
                alive = any(w.up for w in self.of_role("prefill"))
                decision = should_prefill_remote(len(tokens), cached / len(tokens), len(self.queue), self.policy, alive)
                reason = decision.reason.value
                if decision.remote:
                    try:
                        kv = await self.remote_prefill(tokens, cached)
                        prefill_worker = kv["worker_id"]
                    except PrefillFailed:
                        reason = "prefill_failed"
            decode.inflight += 1
            decode.requests += 1
            self.metrics.worker_requests.labels(decode.spec.worker_id, "decode").inc()
            started = False
            try:
                while True:
                    try:
                        async for kind, value in self.backend.generate(self.session, decode.spec.url, tokens, max_tokens, kv, sampling, self.decode_timeout):
                            if kind == "start":
                                started = True
                                route, reason = self._record_start(value, reason, len(tokens))
                                yield "start", {"route": route, "reason": reason, "decode_worker": decode.spec.worker_id,
                                                "prefill_worker": prefill_worker if route == "remote" else None,
                                                "cached_tokens": value["cached_tokens"], "kv": value["kv"]}
                            else:
                                yield kind, value
                                if kind == "end":
                                    return
                        raise RequestFailed(502, f"decode worker {decode.spec.worker_id} ended the stream early", "decode_failed")
                    except KVLoadFailed as exc:
                        # The decode engine refused the prefilled KV before sending anything: prefill locally instead.
                        self.metrics.kv_failures.labels(exc.reason).inc()
                        kv, reason = None, "kv_transfer_failed"
            except aiohttp.ClientResponseError as exc:
                raise RequestFailed(502, f"decode worker {decode.spec.worker_id} answered HTTP {exc.status}", "decode_failed") from None
            except NET_ERRORS as exc:
                if isinstance(exc, (aiohttp.ClientConnectionError, OSError)) and not isinstance(exc, asyncio.TimeoutError):
                    self._mark_down(decode, f"generate failed: {type(exc).__name__}")
                if started or attempt == 1 or not any(w.up and w.spec.worker_id not in tried for w in self.of_role("decode")):
                    raise RequestFailed(503, f"decode worker {decode.spec.worker_id} failed: {type(exc).__name__}", "decode_failed") from None
                # not started: the next decode worker gets the request (with the same KV handle, if any)
            finally:
                decode.inflight -= 1

    def _record_start(self, event: dict, reason: str, prompt_len: int) -> tuple[str, str]:
        kv = event["kv"]
        if event["prefill"] == "remote":
            route = "remote"
            if "bytes" in kv:  # the mock engine measures each transfer; vLLM's engines report theirs as vllm:nixl_*
                self.metrics.kv_bytes.inc(kv["bytes"])
                self.metrics.kv_seconds.observe(kv["seconds"])
            self.metrics.prompt_tokens.labels("kv_transfer").inc(prompt_len - event["cached_tokens"])
        else:
            route = "local"
            if kv["status"] == "failed":
                reason = "kv_transfer_failed"
                self.metrics.kv_failures.labels(kv.get("reason", "unknown")).inc()
            self.metrics.prompt_tokens.labels("local_compute").inc(event["computed_tokens"])
        self.metrics.prompt_tokens.labels("prefix_cache").inc(event["cached_tokens"])
        self.metrics.requests.labels(route, reason).inc()
        return route, reason

    # ---- HTTP ------------------------------------------------------------------------------------------------

    async def _parse(self, request: web.Request, chat: bool):
        try:
            raw = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RequestFailed(400, "request body is not valid JSON", "invalid_json") from None
        if not isinstance(raw, dict):
            raise RequestFailed(400, "request body must be a JSON object", "invalid_json")
        try:
            req = (ChatCompletionRequest if chat else CompletionRequest).model_validate(raw)
        except ValidationError as exc:
            message, param = validation_message(exc)
            raise RequestFailed(400, message, "invalid_request") from None
        if req.model is not None and req.model != self.plan.served_model_name:
            raise RequestFailed(404, f"model {req.model!r} is not served here; this frontend serves {self.plan.served_model_name!r}", "model_not_found")
        if chat:
            tokens = self.backend.tokenize(self.backend.chat_prompt([m.model_dump() for m in req.messages]))
        else:
            tokens = self.backend.tokenize(req.prompt) if isinstance(req.prompt, str) else list(req.prompt)
        if not tokens:
            raise RequestFailed(400, "prompt: the prompt has no tokens", "invalid_request")
        max_tokens = req.output_tokens()
        if len(tokens) + max_tokens > self.plan.max_model_len:
            raise RequestFailed(400, f"prompt ({len(tokens)} tokens) plus max_tokens ({max_tokens}) exceeds max-model-len {self.plan.max_model_len}", "context_length_exceeded")
        return req, tokens, max_tokens

    def _observe_piece(self, arrived: float, last: float | None) -> float:
        """Time to first token for the first piece of a response, inter-token latency for the others."""
        now = time.perf_counter()
        if last is None:
            self.metrics.ttft.observe(now - arrived)
        else:
            self.metrics.itl.observe(now - last)
        return now

    def _error(self, exc: RequestFailed) -> web.Response:
        self.metrics.errors.labels(str(exc.status)).inc()
        err_type = "invalid_request_error" if exc.status < 500 else "server_error"
        return web.json_response(error_body(exc.message, err_type=err_type, code=exc.code), status=exc.status)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, chat=False)

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, chat=True)

    async def _complete(self, request: web.Request, chat: bool) -> web.StreamResponse:
        arrived = time.perf_counter()
        try:
            req, tokens, max_tokens = await self._parse(request, chat)
        except RequestFailed as exc:
            return self._error(exc)
        rid = completion_id(chat)
        model = self.plan.served_model_name
        self.metrics.in_flight.inc()
        try:
            sampling = {k: v for k, v in (("temperature", req.temperature), ("top_p", req.top_p)) if v is not None}
            events = self.serve(tokens, max_tokens, arrived, sampling)
            if req.stream:
                return await self._stream(request, events, rid, model, chat, arrived, len(tokens))
            text, n, info, finish = [], 0, {}, "length"
            last = None
            usage_tokens = None  # what the engine counted, when it says (vLLM); else the pieces received
            try:
                async for kind, value in events:
                    if kind == "usage":
                        usage_tokens = value
                    elif kind == "start":
                        info = value
                    elif kind == "text":
                        last = self._observe_piece(arrived, last)
                        text.append(value)
                        n += 1
                    else:
                        finish = value
            except RequestFailed as exc:
                return self._error(exc)
            self.metrics.duration.observe(time.perf_counter() - arrived)
            n = usage_tokens if usage_tokens is not None else n
            usage = {"prompt_tokens": len(tokens), "completion_tokens": n, "total_tokens": len(tokens) + n}
            body = completion_response(rid, model, "".join(text), finish, usage, chat, info)
            return web.json_response(body, headers={"X-Disagg-Route": info.get("route", ""), "X-Disagg-Reason": info.get("reason", "")})
        finally:
            self.metrics.in_flight.dec()

    async def _stream(self, request: web.Request, events, rid: str, model: str, chat: bool, arrived: float, prompt_len: int) -> web.StreamResponse:
        resp = None
        n, last = 0, None
        try:
            async for kind, value in events:
                if kind == "start":
                    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Disagg-Route": value["route"], "X-Disagg-Reason": value["reason"]})
                    await resp.prepare(request)
                    if chat:
                        await resp.write(_sse(stream_chunk(rid, model, None, None, chat, first=True)))
                elif kind == "text":
                    last = self._observe_piece(arrived, last)
                    await resp.write(_sse(stream_chunk(rid, model, value, None, chat)))
                    n += 1
                elif kind == "end":
                    await resp.write(_sse(stream_chunk(rid, model, None, value, chat)))
            await resp.write(b"data: [DONE]\n\n")
            self.metrics.duration.observe(time.perf_counter() - arrived)
            return resp
        except RequestFailed as exc:
            if resp is None:
                return self._error(exc)
            self.metrics.errors.labels(str(exc.status)).inc()
            await resp.write(_sse(error_body(exc.message, err_type="server_error", code=exc.code)))
            return resp

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.plan.served_model_name, "object": "model", "owned_by": "disagg", "max_model_len": self.plan.max_model_len}]})

    async def health(self, request: web.Request) -> web.Response:
        decode_up = any(w.up for w in self.of_role("decode"))
        all_up = all(w.up for w in self.workers.values())
        status = "ok" if all_up else ("degraded" if decode_up else "unavailable")
        return web.json_response({"status": status, "run_id": self.run_id, "workers": [w.to_json() for w in self.workers.values()]}, status=200 if decode_up else 503)

    async def workers_handler(self, request: web.Request) -> web.Response:
        return web.json_response({"workers": [w.to_json() for w in self.workers.values()], "prefill_queue": len(self.queue)})

    async def metrics_handler(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        if self.backend.name == "vllm":  # one scrape target: the engines' vllm:* series, labelled by worker
            body += (await gather_engine_metrics(self.session, [w for w in self.workers.values() if w.up])).encode()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def config_handler(self, request: web.Request) -> web.Response:
        return web.json_response({"path": self.plan.config_path, "policy": self.policy._asdict(), "block_size": self.plan.block_size,
                                  "max_model_len": self.plan.max_model_len, "served_model_name": self.plan.served_model_name,
                                  "router": self.plan.router, "sections": self.plan.effective, "text": self.plan.config_text})

    async def faults(self, request: web.Request) -> web.Response:
        if not self.fault_injection:
            return web.json_response(error_body("fault injection is off (start with --fault-injection)"), status=403)
        body = await request.json()
        out = {}
        for w in self.workers.values():
            try:
                async with self.session.post(f"{w.spec.url}/debug/faults", json=body) as r:
                    out[w.spec.worker_id] = await r.json()
            except NET_ERRORS as exc:
                out[w.spec.worker_id] = {"error": type(exc).__name__}
        return web.json_response(out)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 2**20)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/health", self.health)
        app.router.add_get("/workers", self.workers_handler)
        app.router.add_get("/metrics", self.metrics_handler)
        app.router.add_get("/config", self.config_handler)
        app.router.add_post("/debug/faults", self.faults)

        async def on_startup(app: web.Application) -> None:
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
            self._dispatch_wake = asyncio.Event()
            app["tasks"] = [asyncio.get_running_loop().create_task(t) for t in (self.monitor(), self.dispatcher())]

        async def on_cleanup(app: web.Application) -> None:
            for t in app["tasks"]:
                t.cancel()
            await self.session.close()

        app.on_startup.append(on_startup)
        app.on_cleanup.append(on_cleanup)
        return app


def _sse(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="disagg-frontend")
    ap.add_argument("--plan-file", required=True)
    ap.add_argument("--workers-file", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--prefill-concurrency", type=int, default=1)
    ap.add_argument("--prefill-timeout", type=float, default=10.0)
    ap.add_argument("--decode-timeout", type=float, default=60.0)
    ap.add_argument("--fault-injection", action="store_true")
    ap.add_argument("--engine", choices=("mock", "vllm"), default="mock")
    ap.add_argument("--model-dir", help="the vLLM engines' model folder (its tokenizer counts prompt tokens)")
    ap.add_argument("--pids-file", help="where the supervisor publishes engine PIDs by URL")
    args = ap.parse_args(argv)
    set_parent_death_signal()
    with open(args.plan_file, encoding="utf-8") as handle:
        plan = RuntimePlan.from_json(handle.read())
    with open(args.workers_file, encoding="utf-8") as handle:
        workers = [WorkerSpec(**w) for w in json.load(handle)]
    backend = None
    if args.engine == "vllm":
        from .backends import VllmBackend

        backend = VllmBackend(args.model_dir, plan.served_model_name, args.pids_file)
    front = Frontend(plan, workers, prefill_concurrency=args.prefill_concurrency, prefill_timeout=args.prefill_timeout,
                     decode_timeout=args.decode_timeout, fault_injection=args.fault_injection, backend=backend)
    web.run_app(front.app(), host=args.host, port=args.port, print=None, access_log=None, reuse_address=True)


if __name__ == "__main__":
    main()
