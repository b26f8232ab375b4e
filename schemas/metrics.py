"""The reference runtime's Prometheus metrics, defined once: name, type, labels and help of each.

The runtime creates its metrics from this table (runtime/metrics.py, runtime/worker.py), the live doctor reads
them through it (doctor/live/aliases.py), and the README's "Metrics" section lists them. A test scrapes a running
`disagg serve` and checks that every metric here is exposed and every signal the doctor reads maps onto one.
"""

from __future__ import annotations

from typing import NamedTuple


class Metric(NamedTuple):
    name: str  # as registered; a counter is exposed as name_total, a histogram as name_bucket/_sum/_count
    kind: str  # counter, gauge or histogram
    labels: tuple[str, ...]
    help: str

    @property
    def exposed(self) -> str:
        """The sample name a scrape shows (the one a query or an alias names)."""
        return self.name + {"counter": "_total", "histogram": "_bucket"}.get(self.kind, "")


# Where a request's prefill ran and why: the `reason` label of disagg_requests_total (schemas/routing.py decides).
# `override`: the client asked for the route (the request body's `"disagg": {"route": ...}`, what the doctor's canary
# sends) and got it; such requests say nothing about the routing policy, so the live rules leave them out.
ROUTE_REASONS = ("remote", "disabled", "below_threshold", "queue_full", "no_prefill_workers", "prefill_failed", "kv_transfer_failed", "override")
# How a prefilled KV region ended: the `reason` label of disagg_engine_kv_released_total. Every end goes through one
# release (runtime/kv.py KVStore.release): zeroed, withdrawn from NIXL, counted here.
#   read      the decode worker read it (over the channel, or its NIXL release notice)
#   ttl       nobody read it within the TTL (the progress loop's sweep, or a reserve that found the arena full)
#   aborted   its request ended first (the client went away, or the decode side refused or could not use it)
#   shutdown  the worker stopped while it waited
KV_RELEASE_REASONS = ("read", "ttl", "aborted", "shutdown")
# Where a prompt token's KV came from: the `source` label of disagg_prompt_tokens_total.
TOKEN_SOURCES = ("local_compute", "kv_transfer", "prefix_cache")

_W = ("worker_id", "role")

FRONTEND = {
    "requests": Metric("disagg_requests", "counter", ("route", "reason"), "Requests by where their prefill ran and why"),
    "queue_size": Metric("disagg_prefill_queue_size", "gauge", (), "Remote prefill requests waiting for a prefill worker"),
    "queue_wait": Metric("disagg_prefill_queue_wait_seconds", "histogram", (), "Time a remote prefill waited in the queue"),
    "worker_info": Metric("disagg_worker_info", "gauge", ("worker_id", "role", "pid", "device"), "One series per worker process (value 1)"),
    "worker_up": Metric("disagg_worker_up", "gauge", _W, "1 when the worker answers its health check"),
    "worker_requests": Metric("disagg_worker_requests", "counter", _W, "Requests sent to each worker"),
    "worker_restarts": Metric("disagg_worker_restarts", "counter", _W, "Times a worker came back with a new process"),
    "prompt_tokens": Metric("disagg_prompt_tokens", "counter", ("source",), "Prompt tokens by where their KV came from"),
    "kv_bytes": Metric("disagg_kv_transfer_bytes", "counter", (), "KV bytes moved from prefill to decode workers"),
    "kv_seconds": Metric("disagg_kv_transfer_seconds", "histogram", (), "Time to move one request's KV"),
    "kv_failures": Metric("disagg_kv_transfer_failures", "counter", ("reason",), "KV transfers that failed (the decode worker prefilled locally)"),
    "ttft": Metric("disagg_time_to_first_token_seconds", "histogram", (), "Request arrival to first token"),
    "itl": Metric("disagg_inter_token_latency_seconds", "histogram", (), "Time between tokens of a response"),
    "duration": Metric("disagg_request_duration_seconds", "histogram", (), "Request arrival to last token"),
    "prompt_len": Metric("disagg_request_prompt_tokens", "histogram", (), "Prompt length of each request, in tokens"),
    "in_flight": Metric("disagg_requests_in_flight", "gauge", (), "Requests being served"),
    "errors": Metric("disagg_request_errors", "counter", ("code",), "Requests answered with an error, by HTTP status"),
    "aborted": Metric("disagg_requests_aborted", "counter", (), "Requests whose client went away first; their work was stopped on every worker"),
    "migrated": Metric("disagg_requests_migrated", "counter", (), "Requests moved to another decode worker after one failed before anything was sent"),
    "workers_known": Metric("disagg_workers_registered", "gauge", ("role",), "Workers this frontend knows of, by role (the plan's, or those registered in etcd)"),
    "discovery_up": Metric("disagg_discovery_up", "gauge", (), "1 while the worker list is current: always for a single-host run, while the etcd watch is live with --discovery"),
    "discovery_errors": Metric("disagg_discovery_errors", "counter", ("reason",), "Discovery problems: etcd unreachable, a registration from another run, a lost lease"),
    "frontends": Metric("disagg_frontends", "gauge", (), "Frontends serving this deployment; each applies max-prefill-queue-size to its own queue"),
    "policy": Metric("disagg_routing_policy_info", "gauge", ("remote_prefill", "conditional_disagg", "max_local_prefill_length", "max_prefill_queue_size"),
                     "The routing policy in force (value 1)"),
}

WORKER = {
    "requests": Metric("disagg_engine_requests", "counter", _W, "Requests this worker served"),
    "computed_tokens": Metric("disagg_engine_prompt_tokens_computed", "counter", _W, "Prompt tokens this worker prefilled itself"),
    "busy": Metric("disagg_engine_busy_seconds", "counter", _W, "Seconds the engine spent computing (utilisation = rate)"),
    "running": Metric("disagg_engine_requests_running", "gauge", _W, "Sequences being decoded"),
    "waiting": Metric("disagg_engine_requests_waiting", "gauge", _W, "Sequences waiting for KV blocks or a prefill slot"),
    "kv_usage": Metric("disagg_engine_kv_cache_usage_ratio", "gauge", _W, "Share of KV blocks in use"),
    "prefix_hits": Metric("disagg_engine_prefix_cache_hit_tokens", "counter", _W, "Prompt tokens found in the prefix cache"),
    "kv_expired": Metric("disagg_engine_kv_expired", "counter", _W, "Prefilled KV regions freed unread after their TTL (the decode side prefilled again)"),
    "kv_released": Metric("disagg_engine_kv_released", "counter", _W + ("reason",), "Prefilled KV regions freed (zeroed, withdrawn from NIXL), by how they ended"),
    "kv_pending": Metric("disagg_engine_kv_pending", "gauge", _W, "Prefilled KV regions waiting to be read"),
    "arena_used": Metric("disagg_engine_kv_arena_used_bytes", "gauge", _W, "Bytes of the KV arena held by regions in use"),
    "arena_free_max": Metric("disagg_engine_kv_arena_largest_free_bytes", "gauge", _W,
                             "The largest free region of the KV arena (a prompt whose KV is larger cannot be prefilled remotely now)"),
    "rejected": Metric("disagg_engine_connections_rejected", "counter", _W, "Connections refused for lacking this run's secret"),
    "kv_refused": Metric("disagg_engine_kv_refused", "counter", _W + ("reason",),
                         "KV exchanges refused because the two workers' KV layouts differ (block size, dtype, model, TP)"),
}
