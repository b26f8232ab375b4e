"""Routing one request: pick a decode worker, decide local or remote prefill with `schemas.routing` (the function the
doctor predicts with), run the remote prefill through the queue, and stream the decode.

No request is lost to a failure on the remote path: a failed prefill (any reason) or KV the decode worker could not
use ends in a local prefill, counted by reason. A decode worker that fails before anything reached the client is
replaced once by another one (Dynamo's migration, `disagg_requests_migrated_total`); after that, or once something
was sent, the request ends with an error the API turns into an OpenAI error.

A request may ask for its route (`"disagg": {"route": "local" | "remote"}`, the doctor's known-answer canary does):
`schemas.routing.override_route` says whether it can have it; granted, it is counted with reason `override`, and
refused it is routed as any other, its answer saying why (`disagg.override`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

from disagg.schemas.routing import override_route, should_prefill_remote

from ..backends import KVLoadFailed, WorkerFailed
from .pool import NoDecodeWorker
from .prefill_queue import PrefillFailed

MIGRATION_LIMIT = 1  # other decode workers a request may move to before anything was sent


class RequestFailed(Exception):
    def __init__(self, status: int, message: str, code: str):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class Router:
    def __init__(self, plan, pool, queue, backend, metrics, decode_timeout: float):
        self.plan, self.pool, self.queue, self.backend, self.metrics = plan, pool, queue, backend, metrics
        self.policy = plan.policy
        self.decode_timeout = decode_timeout

    async def _cached_tokens(self, decode, tokens: list[int], salt: str) -> int:
        if not (self.plan.enable_prefix_caching and self.policy.remote_prefill):
            return 0
        try:
            return await self.backend.prefix_hit(decode, tokens, salt)
        except WorkerFailed:
            return 0

    async def serve(self, tokens: list[int], max_tokens: int, request: str, sampling: dict, salt: str, sent: dict,
                    route: str | None = None) -> AsyncIterator[tuple[str, object]]:
        """Yields ("start", info), ("text", (piece, tokens in it))..., ("usage", n), ("end", finish_reason); ("restart", None) when a
        decode worker failed after producing text the client has not seen (the consumer drops it). `sent["any"]`
        is set by the consumer once something reached the client: from then on nothing is retried."""
        self.metrics.prompt_len.observe(len(tokens))
        if salt:
            sampling = {**sampling, "cache_salt": salt}  # vLLM's request field, and the mock engine's
        tried: set[str] = set()
        decision = None
        kv = None
        reason = "disabled"
        prefill_worker = None
        recorded = False
        kv_read = False  # set once the decode worker says it used the prefilled KV
        override = None  # what the response says about a requested route
        try:
            for attempt in range(MIGRATION_LIMIT + 1):
                try:
                    decode = await self.pool.pick_decode_held(tried)
                except NoDecodeWorker as exc:
                    raise RequestFailed(503, str(exc), "no_decode_worker") from None
                tried.add(decode.worker_id)
                if decision is None:
                    cached = await self._cached_tokens(decode, tokens, salt)
                    alive = self.pool.any_up("prefill")
                    decision = should_prefill_remote(len(tokens), cached / len(tokens), len(self.queue), self.policy, alive)
                    if route is not None:
                        decision, refused = override_route(route, decision, len(self.queue), self.policy, alive)
                        override = {"route": route, "honoured": refused is None, **({"why": refused} if refused else {})}
                    reason = decision.reason.value
                    if decision.remote:
                        try:
                            prefill_worker, kv = await self.queue.submit(tokens, cached, request)
                        except PrefillFailed:
                            reason = "prefill_failed"
                decode.inflight += 1
                decode.requests += 1
                self.metrics.worker_requests.labels(decode.worker_id, "decode").inc()
                produced = False
                try:
                    while True:
                        try:
                            first = True
                            # Closed here, not by the garbage collector's hook (which wakes the loop through its self-pipe).
                            async with aclosing(self.backend.generate(decode, tokens, max_tokens, kv if decision.remote else None, sampling, request, self.decode_timeout)) as gen:
                                async for kind, value in gen:
                                    if kind == "tokens":
                                        produced = True
                                        yield "text", (self.backend.detokenize(value, first), len(value) if isinstance(value, list) else 1)
                                        first = False
                                    elif kind == "start":
                                        if not recorded:
                                            route, reason = self._record_start(value, reason, len(tokens))
                                            recorded = True
                                        else:
                                            route = value["prefill"]
                                        kv_read = kv_read or route == "remote"
                                        yield "start", {"route": route, "reason": reason, "decode_worker": decode.worker_id,
                                                        "prefill_worker": prefill_worker if route == "remote" else None,
                                                        "cached_tokens": value["cached_tokens"], "kv": value["kv"],
                                                        **({"override": override} if override is not None else {})}
                                    elif kind == "end":
                                        yield "end", value
                                        return
                                    else:
                                        yield kind, value
                            raise WorkerFailed("stream_ended", f"{decode.worker_id} ended the stream early")
                        except KVLoadFailed as exc:
                            # The decode engine refused the prefilled KV before sending anything: prefill locally instead.
                            self.metrics.kv_failures.labels(exc.reason).inc()
                            self.queue.release(prefill_worker, kv)
                            kv, reason = None, "kv_transfer_failed"
                except WorkerFailed as exc:
                    if exc.reason in ("disconnected", "connect"):
                        self.pool.mark_down(decode, f"generate failed: {exc.reason}")
                    others = any(w.up and w.worker_id not in tried for w in self.pool.of_role("decode"))
                    if sent.get("any") or attempt == MIGRATION_LIMIT or not others:
                        raise RequestFailed(503, f"decode worker {decode.worker_id} failed: {exc}", "decode_failed") from None
                    self.metrics.migrated.inc()
                    if produced:
                        yield "restart", None
                finally:
                    decode.inflight -= 1
        finally:
            if kv is not None and not kv_read:  # prefilled, never read (client gone, decode refused it, or failed): free it now
                self.queue.release(prefill_worker, kv)

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
