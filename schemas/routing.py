"""The one conditional-disaggregation rule: should this request's prefill run on a remote prefill worker?

Dynamo >= 0.1.1 (`disagg_router.py`) decides

    remote = remote_prefill and (not conditional_disagg
                                 or (floor(isl * (1 - prefix_hit_rate)) > max_local_prefill_length
                                     and queue_size < max_prefill_queue_size))

The runtime routes with this function and the doctor predicts with it, so a prediction is the runtime's behaviour.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import NamedTuple


class RouteReason(str, Enum):
    """Why a request's prefill went where it went (the `reason` label of `disagg_requests_total`)."""

    REMOTE = "remote"
    DISABLED = "disabled"  # remote-prefill is off: everything prefills on the decode worker
    BELOW_THRESHOLD = "below_threshold"  # uncached prompt <= max-local-prefill-length
    QUEUE_FULL = "queue_full"  # prefill queue already holds max-prefill-queue-size requests
    NO_PREFILL_WORKERS = "no_prefill_workers"  # remote was chosen but no prefill worker is alive
    OVERRIDE = "override"  # the client asked for this route (`"disagg": {"route": ...}` in the request body)


class RoutingPolicy(NamedTuple):
    """The decode worker's disaggregation settings (Dynamo v0 `VllmWorker` keys and defaults)."""

    remote_prefill: bool = False
    conditional_disagg: bool = False
    max_local_prefill_length: int = 1000  # tokens
    max_prefill_queue_size: int = 3  # requests


class RouteDecision(NamedTuple):
    remote: bool
    reason: RouteReason
    prefill_length: int  # uncached prompt tokens that someone must prefill


def uncached_prefill_length(prompt_tokens: int, prefix_hit_rate: float) -> int:
    """Prompt tokens not already in the KV cache, rounded down as Dynamo did."""
    hit = min(max(prefix_hit_rate, 0.0), 1.0)
    return math.floor(prompt_tokens * (1.0 - hit))


def should_prefill_remote(
    prompt_tokens: int,
    prefix_hit_rate: float,
    queue_size: int,
    policy: RoutingPolicy,
    prefill_workers_alive: bool = True,
) -> RouteDecision:
    """Decide remote or local prefill for one request.

    `queue_size` is the number of remote prefill requests already waiting; the request goes local once it reaches
    `max_prefill_queue_size` (Dynamo's code uses `<`, though its help text says "greater than").
    `prefill_workers_alive=False` turns a remote decision into a local one with reason `no_prefill_workers`,
    where Dynamo would have queued it for nobody.
    """
    length = uncached_prefill_length(prompt_tokens, prefix_hit_rate)
    if not policy.remote_prefill:
        return RouteDecision(False, RouteReason.DISABLED, length)
    if policy.conditional_disagg:
        if length <= policy.max_local_prefill_length:
            return RouteDecision(False, RouteReason.BELOW_THRESHOLD, length)
        if queue_size >= policy.max_prefill_queue_size:
            return RouteDecision(False, RouteReason.QUEUE_FULL, length)
    if not prefill_workers_alive:
        return RouteDecision(False, RouteReason.NO_PREFILL_WORKERS, length)
    return RouteDecision(True, RouteReason.REMOTE, length)


def override_route(asked: str, decision: RouteDecision, queue_size: int, policy: RoutingPolicy,
                   prefill_workers_alive: bool = True) -> tuple[RouteDecision, str | None]:
    """A client's requested route (`local` or `remote`) in place of the rule's `decision`: (the decision, None) when
    it can be honoured, else (the rule's own decision, why not). `local` always can (it is what the rule does for any
    short prompt). `remote` cannot where the deployment has no remote prefill (off, or no prefill worker alive), and
    it does not jump a full queue: with conditional-disagg the queue's cap protects the prefill workers, and a client
    may not lift it."""
    if asked == "local":
        return RouteDecision(False, RouteReason.OVERRIDE, decision.prefill_length), None
    if not policy.remote_prefill:
        return decision, "remote prefill is off in this deployment"
    if not prefill_workers_alive:
        return decision, "no prefill worker is alive"
    if policy.conditional_disagg and queue_size >= policy.max_prefill_queue_size:
        return decision, f"the prefill queue is full ({queue_size} >= max-prefill-queue-size {policy.max_prefill_queue_size})"
    return RouteDecision(True, RouteReason.OVERRIDE, decision.prefill_length), None
