"""The runtime's Prometheus metrics, created from the contract in schemas/metrics.py (names, types, labels and help
are defined there once; the live doctor reads the same table). The registry is injected so tests do not share
global state."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from disagg.schemas.metrics import FRONTEND, ROUTE_REASONS, TOKEN_SOURCES, WORKER, Metric

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Powers of two and the points half way between (×1.5): a quantile is interpolated inside its bucket, so ~1000-token
# prompts read p50 ≈ 900 (bucket 768-1024) rather than 768 (512-1024) with powers of two alone.
TOKEN_BUCKETS = tuple(sorted(b for k in range(3, 18) for b in (2**k, 3 * 2**k // 2) if b <= 131072))
_KINDS = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}


def create(registry: CollectorRegistry, metric: Metric, buckets=LATENCY_BUCKETS):
    extra = {"buckets": buckets} if metric.kind == "histogram" else {}
    return _KINDS[metric.kind](metric.name, metric.help, list(metric.labels), registry=registry, **extra)


class FrontendMetrics:
    """One attribute per FRONTEND entry (`self.requests`, `self.queue_size`, ...)."""

    def __init__(self, registry: CollectorRegistry):
        for key, metric in FRONTEND.items():
            setattr(self, key, create(registry, metric, TOKEN_BUCKETS if key == "prompt_len" else LATENCY_BUCKETS))
        for reason in ROUTE_REASONS:  # every series exists from the start, so rate() and absence checks work
            self.requests.labels(route="remote" if reason == "remote" else "local", reason=reason)
        for source in TOKEN_SOURCES:
            self.prompt_tokens.labels(source=source)


class WorkerMetrics:
    """One attribute per WORKER entry, bound to this worker's labels (`kv_refused` keeps its `reason` label open)."""

    def __init__(self, registry: CollectorRegistry, worker_id: str, role: str):
        for key, metric in WORKER.items():
            family = create(registry, metric)
            bound = {"worker_id": worker_id, "role": role}
            if set(metric.labels) == set(bound):
                setattr(self, key, family.labels(**bound))
            else:
                setattr(self, key, _Partial(family, bound))


class _Partial:
    """A metric family with some labels fixed: `.labels(reason=...)` fills in the rest."""

    def __init__(self, family, fixed: dict[str, str]):
        self.family, self.fixed = family, fixed

    def labels(self, **rest: str):
        return self.family.labels(**self.fixed, **rest)
