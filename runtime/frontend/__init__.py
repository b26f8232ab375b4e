"""The frontend process: the OpenAI-compatible HTTP API in front of the worker pool, the prefill queue and the router.

    pool.py           who is up (health checks), restarts, picking a decode worker
    prefill_queue.py  remote prefills waiting for a prefill worker
    router.py         one request: local or remote prefill (schemas.routing), fallbacks, migration
    completions.py    the two completion endpoints: parsing as vLLM does, whole and streamed answers
    http.py           the rest of the HTTP surface: auth, OpenAI-shaped errors, limits, drain, /metrics, /config
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

from prometheus_client import CollectorRegistry

from ..identity import run_id
from ..metrics import FrontendMetrics
from ..plan import RuntimePlan, WorkerSpec
from ..process import Watchdog, run_secret, setup
from .completions import Completions
from .pool import WorkerPool, WorkerState
from .prefill_queue import PrefillQueue
from .router import RequestFailed, Router

__all__ = ["Frontend", "RequestFailed", "main"]


class Frontend:
    def __init__(self, plan: RuntimePlan, specs: list[WorkerSpec], backend, secret: bytes, *, prefill_concurrency: int = 1, prefill_timeout: float = 10.0,
                 decode_timeout: float = 60.0, fault_injection: bool = False, api_key: str | None = None, max_connections: int = 4096,
                 registry: CollectorRegistry | None = None):
        self.plan, self.backend, self.secret = plan, backend, secret
        self.run_id = run_id(secret)
        self.api_key = api_key
        self.fault_injection = fault_injection
        self.max_connections = max_connections
        self.registry = registry or CollectorRegistry()
        self.metrics = FrontendMetrics(self.registry)
        self.pool = WorkerPool(specs, backend, self.metrics, plan.router, on_change=self._worker_changed)
        self.queue = PrefillQueue(self.pool, backend, self.metrics, prefill_concurrency, prefill_timeout)
        self.router = Router(plan, self.pool, self.queue, backend, self.metrics, decode_timeout)
        self.completions = Completions(self)
        self.membership = None  # set for a multi-host run (membership.py)
        self.metrics.discovery_up.set(1)
        self.metrics.frontends.set(1)
        self.terminating = False
        p = plan.policy
        self.metrics.policy.labels(str(p.remote_prefill).lower(), str(p.conditional_disagg).lower(), str(p.max_local_prefill_length), str(p.max_prefill_queue_size)).set(1)

    def _worker_changed(self, w: WorkerState) -> None:
        if w.role != "prefill":
            return
        if w.up:
            self.queue.wake.set()
        elif not self.pool.any_up("prefill"):
            self.queue.fail_all("no_prefill_workers", "no prefill worker is alive")

    def observe_piece(self, arrived: float, last: float | None) -> float:
        """Time to first token for the first piece of a response, inter-token latency for the others."""
        now = time.perf_counter()
        if last is None:
            self.metrics.ttft.observe(now - arrived)
        else:
            self.metrics.itl.observe(now - last)
        return now

    def error(self, exc: RequestFailed):
        from .http import error_response

        return error_response(self.metrics, exc.status, exc.message, exc.code)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="disagg-frontend")
    ap.add_argument("--plan-file", required=True)
    ap.add_argument("--workers-file", help="the workers of a single-host run")
    ap.add_argument("--discovery", help="etcd://HOST:PORT: find workers there (multi-host)")
    ap.add_argument("--namespace", default="disagg")
    ap.add_argument("--advertise", default="127.0.0.1", help="the address other hosts reach this frontend at")
    ap.add_argument("--host-id", default="")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--prefill-concurrency", type=int, default=1)
    ap.add_argument("--prefill-timeout", type=float, default=10.0)
    ap.add_argument("--decode-timeout", type=float, default=60.0)
    ap.add_argument("--drain-seconds", type=float, default=30.0)
    ap.add_argument("--max-connections", type=int, default=4096)
    ap.add_argument("--fault-injection", action="store_true")
    ap.add_argument("--engine", choices=("mock", "vllm"), default="mock")
    ap.add_argument("--model-dir", help="the vLLM engines' model folder (its tokenizer counts prompt tokens)")
    ap.add_argument("--pids-file", help="where the supervisor publishes engine PIDs by URL")
    ap.add_argument("--listen-fd", type=int, help="a listening socket handed over by the supervisor")
    args = ap.parse_args(argv)
    setup("frontend")
    secret = run_secret()
    api_key = os.environ.pop("DISAGG_API_KEY", None) or None
    with open(args.plan_file, encoding="utf-8") as handle:
        plan = RuntimePlan.from_json(handle.read())
    specs = []
    if args.workers_file and not args.discovery:
        with open(args.workers_file, encoding="utf-8") as handle:
            specs = [WorkerSpec(**w) for w in json.load(handle)]
    if args.engine == "vllm":
        from ..backends.vllm import VllmBackend
        from ..identity import engine_api_key

        backend = VllmBackend(args.model_dir, plan.served_model_name, engine_api_key(secret), args.pids_file)
    else:
        from ..backends.mock import MockBackend

        backend = MockBackend(secret)
    front = Frontend(plan, specs, backend, secret, prefill_concurrency=args.prefill_concurrency, prefill_timeout=args.prefill_timeout,
                     decode_timeout=args.decode_timeout, fault_injection=args.fault_injection, api_key=api_key, max_connections=args.max_connections)
    if args.discovery:
        from .membership import Membership

        front.membership = Membership(front, args.discovery, args.namespace, args.advertise, args.host_id, args.port)
    from .http import serve

    asyncio.run(serve(front, args.host, args.port, args.drain_seconds, Watchdog(), args.listen_fd))
