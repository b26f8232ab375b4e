"""What a deployment runs, computed once from the deployment model (schemas/model.py): the routing policy of its
Dynamo v0 decode worker. The doctor's rules predict with it and `disagg serve` routes with it."""

from __future__ import annotations

from .engines import as_int
from .model import Deployment, Worker
from .routing import RoutingPolicy

V0_ROUTING_DEFAULTS = {"max_local_prefill_length": 1000, "max_prefill_queue_size": 3}  # knowledge: dynamo.v0.routing_keys
_ROUTING = ("remote_prefill", "conditional_disagg", "max_local_prefill_length", "max_prefill_queue_size")


def v0_decode(dep: Deployment) -> Worker | None:
    """The Dynamo v0 decode worker that applies the remote-prefill rule (the `VllmWorker` section; a v0 config read
    from a string, such as a DynamoGraphDeployment's DYN_DEPLOYMENT_CONFIG, names its workers by their section but has
    no section fixes could edit)."""
    for w in dep.workers:
        if w.program == "dynamo-v0:vllm" and (w.section == ("VllmWorker",) or (w.section is None and w.name == "VllmWorker")):
            return w
    return None


def v0_router(dep: Deployment) -> Worker | None:
    """The v0 decode worker whose routing keys are checked: `VllmWorker`, else a decode section that sets them (the
    multimodal example's `VllmDecodeWorker` reads them too)."""
    dec = v0_decode(dep)
    if dec is not None:
        return dec
    for w in dep.workers:
        if w.program == "dynamo-v0:vllm" and w.role == "decode" and any(k in w.settings for k in _ROUTING):
            return w
    return None


def flag_bool(w: Worker, key: str) -> bool:
    """A store_true flag: set (any written value but an explicit false) or not."""
    s = w.settings.get(key)
    return s is not None and s.known and str(s.value).lower() not in ("false", "0")


def routing_policy(w: Worker) -> RoutingPolicy:
    """The routing policy a decode worker applies, from its settings (Dynamo v0's defaults where unset)."""
    def num(key: str) -> int:
        v = as_int(w.known(key))
        return v if v is not None else V0_ROUTING_DEFAULTS[key]

    return RoutingPolicy(flag_bool(w, "remote_prefill"), flag_bool(w, "conditional_disagg"), num("max_local_prefill_length"),
                         num("max_prefill_queue_size"))


def deployment_policy(dep: Deployment) -> RoutingPolicy:
    """The routing policy of a Dynamo v0 deployment: its decode worker's, else everything local (the default)."""
    dec = v0_router(dep)
    return routing_policy(dec) if dec is not None else RoutingPolicy()
