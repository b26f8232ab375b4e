"""Workloads for prediction: `isl=200,osl=10[,prefix-hit=0.2]` or a JSON-lines trace, run through the routing rule."""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import NamedTuple

from disagg.schemas.routing import RouteReason, RoutingPolicy, should_prefill_remote

# Field names public traces use for a request's prompt length (mooncake: input_length; others below).
_ISL_FIELDS = ("input_length", "isl", "input_tokens", "prompt_tokens", "prompt_len", "num_prompt_tokens")
_HIT_FIELDS = ("prefix_hit_rate", "prefix_hit", "cache_hit_rate")
MAX_TRACE_REQUESTS = 1_000_000


class WorkloadError(ValueError):
    """A workload spec or trace that cannot be read; the message names where."""


class Request(NamedTuple):
    isl: int  # prompt tokens
    prefix_hit: float = 0.0  # share of the prompt already in the KV cache


class Workload(NamedTuple):
    source: str
    requests: tuple[Request, ...]


class Prediction:
    """Share of a workload's requests that a config sends to a prefill worker, with the reasons for the rest."""

    def __init__(self, total: int):
        self.total = total
        self.reasons: Counter[str] = Counter()

    @property
    def remote(self) -> int:
        return self.reasons.get(RouteReason.REMOTE.value, 0)

    @property
    def remote_share(self) -> float:
        return self.remote / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "requests": self.total,
            "remote_share": round(self.remote_share, 4),
            "reasons": dict(sorted(self.reasons.items())),
            "queue": "not predicted statically: assumes an empty prefill queue",
        }


def parse_workload(spec: str) -> Workload:
    """`isl=200,osl=10,prefix-hit=0.2`, or the path of a JSON-lines trace."""
    if "=" in spec and not os.path.exists(spec):
        return _parse_inline(spec)
    return _parse_trace(spec)


def _parse_inline(spec: str) -> Workload:
    values: dict[str, str] = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise WorkloadError(f"--workload {spec!r}: expected key=value pairs such as isl=200,osl=10")
        values[key.strip().lower().replace("_", "-")] = value.strip()
    unknown = set(values) - {"isl", "osl", "prefix-hit"}
    if unknown:
        raise WorkloadError(f"--workload: unknown key(s) {', '.join(sorted(unknown))}; known: isl, osl, prefix-hit")
    if "isl" not in values:
        raise WorkloadError("--workload: isl= (prompt tokens) is required")
    try:
        isl = int(values["isl"])
        osl = int(values.get("osl", "0"))
        hit = float(values.get("prefix-hit", "0"))
    except ValueError as exc:
        raise WorkloadError(f"--workload {spec!r}: {exc}") from None
    if isl < 0 or osl < 0 or not 0.0 <= hit <= 1.0:
        raise WorkloadError(f"--workload {spec!r}: isl and osl must be >= 0 and prefix-hit within 0..1")
    return Workload(source=spec, requests=(Request(isl, hit),))


def _parse_trace(path: str) -> Workload:
    try:
        handle = open(path, encoding="utf-8")
    except OSError as exc:
        raise WorkloadError(f"--workload {path}: {exc.strerror}") from None
    requests = []
    with handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            if len(requests) >= MAX_TRACE_REQUESTS:
                raise WorkloadError(f"{path}:{lineno}:1: trace has over {MAX_TRACE_REQUESTS} requests")
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise WorkloadError(f"{path}:{lineno}:{exc.colno}: not JSON: {exc.msg}") from None
            if not isinstance(row, dict):
                raise WorkloadError(f"{path}:{lineno}:1: each line must be a JSON object")
            isl = next((row[k] for k in _ISL_FIELDS if k in row), None)
            if isinstance(isl, bool) or not isinstance(isl, int) or isl < 0:
                raise WorkloadError(f"{path}:{lineno}:1: no prompt length; expected one of {', '.join(_ISL_FIELDS)} as a whole number")
            hit = next((row[k] for k in _HIT_FIELDS if k in row), 0.0)
            if isinstance(hit, bool) or not isinstance(hit, (int, float)) or not 0 <= hit <= 1:
                raise WorkloadError(f"{path}:{lineno}:1: prefix hit rate must be a number within 0..1")
            requests.append(Request(isl, float(hit)))
    if not requests:
        raise WorkloadError(f"{path}: trace has no requests")
    return Workload(source=path, requests=tuple(requests))


def predict(policy: RoutingPolicy, workload: Workload, prefill_workers_alive: bool) -> Prediction:
    """Route every request of the workload with an empty prefill queue (the queue is a runtime quantity)."""
    pred = Prediction(total=len(workload.requests))
    for req in workload.requests:
        decision = should_prefill_remote(req.isl, req.prefix_hit, 0, policy, prefill_workers_alive)
        pred.reasons[decision.reason.value] += 1
    return pred
