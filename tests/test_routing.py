"""The routing rule, table-driven: every branch and the boundaries (= threshold, = queue limit)."""

from __future__ import annotations

import pytest

from disagg.schemas.routing import RouteReason, RoutingPolicy, should_prefill_remote, uncached_prefill_length

OFF = RoutingPolicy(remote_prefill=False)
ALWAYS = RoutingPolicy(remote_prefill=True, conditional_disagg=False)
COND = RoutingPolicy(remote_prefill=True, conditional_disagg=True, max_local_prefill_length=10, max_prefill_queue_size=2)

R, D, B, Q, N = RouteReason.REMOTE, RouteReason.DISABLED, RouteReason.BELOW_THRESHOLD, RouteReason.QUEUE_FULL, RouteReason.NO_PREFILL_WORKERS


@pytest.mark.parametrize(
    "policy, isl, hit, queue, alive, remote, reason",
    [
        (OFF, 5000, 0.0, 0, True, False, D),  # the seed: remote-prefill off, everything local
        (OFF, 5000, 0.0, 0, False, False, D),  # disabled wins over no workers
        (ALWAYS, 1, 0.0, 0, True, True, R),  # not conditional: even a 1-token prompt goes remote
        (ALWAYS, 1, 0.0, 99, True, True, R),  # not conditional: the queue is not consulted
        (ALWAYS, 200, 0.0, 0, False, False, N),
        (COND, 10, 0.0, 0, True, False, B),  # = threshold stays local ("greater than" goes remote)
        (COND, 11, 0.0, 0, True, True, R),  # threshold + 1 goes remote
        (COND, 11, 0.0, 1, True, True, R),  # queue below the limit
        (COND, 11, 0.0, 2, True, False, Q),  # = queue limit: local (Dynamo's code uses <)
        (COND, 11, 0.0, 3, True, False, Q),
        (COND, 200, 0.95, 0, True, False, B),  # floor(200 * 0.05) = 10 uncached tokens: local
        (COND, 200, 0.9, 0, True, True, R),  # 20 uncached tokens: remote
        (COND, 200, 0.0, 0, False, False, N),
        (COND, 5, 0.0, 5, False, False, B),  # below threshold beats queue and liveness
        (RoutingPolicy(True, True, 10, 0), 200, 0.0, 0, True, False, Q),  # queue limit 0 never admits
    ],
)
def test_should_prefill_remote(policy, isl, hit, queue, alive, remote, reason):
    decision = should_prefill_remote(isl, hit, queue, policy, alive)
    assert (decision.remote, decision.reason) == (remote, reason)


def test_uncached_length_floors_and_clamps():
    assert uncached_prefill_length(200, 0.2) == 160
    assert uncached_prefill_length(7, 0.5) == 3
    assert uncached_prefill_length(100, 1.5) == 0
    assert uncached_prefill_length(100, -1) == 100


def test_defaults_are_dynamos():
    p = RoutingPolicy()
    assert (p.remote_prefill, p.conditional_disagg, p.max_local_prefill_length, p.max_prefill_queue_size) == (False, False, 1000, 3)
