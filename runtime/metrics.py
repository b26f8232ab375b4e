"""The frontend's Prometheus metrics. Names and labels are a public contract (README, "Metrics"): the live doctor
and outside dashboards read them. The registry is injected so tests do not share global state."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

ROUTE_REASONS = ("remote", "disabled", "below_threshold", "queue_full", "no_prefill_workers", "prefill_failed", "kv_transfer_failed")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
TOKEN_BUCKETS = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)


class FrontendMetrics:
    def __init__(self, registry: CollectorRegistry):
        r = registry
        self.requests = Counter("disagg_requests", "Requests by where their prefill ran and why", ["route", "reason"], registry=r)
        self.queue_size = Gauge("disagg_prefill_queue_size", "Remote prefill requests waiting for a prefill worker", registry=r)
        self.queue_wait = Histogram("disagg_prefill_queue_wait_seconds", "Time a remote prefill waited in the queue", buckets=LATENCY_BUCKETS, registry=r)
        self.worker_info = Gauge("disagg_worker_info", "One series per worker process (value 1)", ["worker_id", "role", "pid", "device"], registry=r)
        self.worker_up = Gauge("disagg_worker_up", "1 when the worker answers its health check", ["worker_id", "role"], registry=r)
        self.worker_requests = Counter("disagg_worker_requests", "Requests sent to each worker", ["worker_id", "role"], registry=r)
        self.worker_restarts = Counter("disagg_worker_restarts", "Times a worker came back with a new process", ["worker_id", "role"], registry=r)
        self.prompt_tokens = Counter("disagg_prompt_tokens", "Prompt tokens by where their KV came from", ["source"], registry=r)
        self.kv_bytes = Counter("disagg_kv_transfer_bytes", "KV bytes moved from prefill to decode workers", registry=r)
        self.kv_seconds = Histogram("disagg_kv_transfer_seconds", "Time to move one request's KV", buckets=LATENCY_BUCKETS, registry=r)
        self.kv_failures = Counter("disagg_kv_transfer_failures", "KV transfers that failed (the decode worker prefilled locally)", ["reason"], registry=r)
        self.ttft = Histogram("disagg_time_to_first_token_seconds", "Request arrival to first token", buckets=LATENCY_BUCKETS, registry=r)
        self.itl = Histogram("disagg_inter_token_latency_seconds", "Time between tokens of a response", buckets=LATENCY_BUCKETS, registry=r)
        self.duration = Histogram("disagg_request_duration_seconds", "Request arrival to last token", buckets=LATENCY_BUCKETS, registry=r)
        self.prompt_len = Histogram("disagg_request_prompt_tokens", "Prompt length of each request, in tokens", buckets=TOKEN_BUCKETS, registry=r)
        self.in_flight = Gauge("disagg_requests_in_flight", "Requests being served", registry=r)
        self.errors = Counter("disagg_request_errors", "Requests answered with an error", ["code"], registry=r)
        self.policy = Gauge(
            "disagg_routing_policy_info", "The routing policy in force (value 1)",
            ["remote_prefill", "conditional_disagg", "max_local_prefill_length", "max_prefill_queue_size"], registry=r,
        )
        for reason in ROUTE_REASONS:  # every series exists from the start, so rate() and absence checks work
            self.requests.labels(route="remote" if reason == "remote" else "local", reason=reason)
        for source in ("local_compute", "kv_transfer", "prefix_cache"):
            self.prompt_tokens.labels(source=source)
