from __future__ import annotations

from disagg.schemas import knowledge

from ...finding import Fix, Severity
from ...registry import Rule
from .._connectors import ASCEND, ASCEND_DIRECTIONAL, runs_vllm_ascend, transports, vllm_releases, worker_uses

# Connector classes whose direction is the kv_role: only a producer (or kv_both) saves and sends KV, only a consumer
# (or kv_both) loads it (knowledge: vllm.kv_role_direction; vLLM's v1 MooncakeConnector: vllm-project/vllm 009d7c76
# v1/mooncake_connector.py, whose scheduler queues receives only when kv_role != "kv_producer" and sends only when
# kv_role != "kv_consumer", and asserts both). A connector is judged by the class the targeted release's factory loads
# for its name (a name from kv_connector_module_path, or one a release maps elsewhere, is not judged). NixlConnector
# takes its direction per request from the proxy's kv_transfer_params, LMCacheConnectorV1 from LMCache's own config,
# and v1's MooncakeStoreConnector is not established here: none of them is judged.
DIRECTIONAL = {
    ("vllm.distributed.kv_transfer.kv_connector.simple_connector", "SimpleConnector"): "vLLM V0's PyNccl/Mooncake pipe",
    ("vllm.distributed.kv_transfer.kv_connector.lmcache_connector", "LMCacheConnector"): "vLLM V0's LMCacheConnector",
    ("vllm.distributed.kv_transfer.kv_connector.mooncake_store_connector", "MooncakeStoreConnector"): "vLLM V0's MooncakeStoreConnector",
    ("vllm.distributed.kv_transfer.kv_connector.v1.p2p.p2p_nccl_connector", "P2pNcclConnector"): "P2pNcclConnector",
    ("vllm.distributed.kv_transfer.kv_connector.v1.mooncake_connector", "MooncakeConnector"): "MooncakeConnector",
    ("vllm.distributed.kv_transfer.kv_connector.v1.mooncake.mooncake_connector", "MooncakeConnector"): "MooncakeConnector",
}
_SENDS = ("kv_producer", "kv_both")
_LOADS = ("kv_consumer", "kv_both")


def _directional(t) -> bool:
    return not t.unknown and bool(t.classes) and t.classes <= DIRECTIONAL.keys()


def _ascend_directional(w, t, name: str) -> bool:
    """A vllm-ascend point-to-point connector named as its plugin registers it (no class of vLLM's own). With a
    kv_connector_module_path only where the path cannot change the class: the worker runs vllm-ascend, the path is the
    module the plugin registers that name from, and every vLLM release it may run takes a registered name before the
    module path (knowledge: vllm.connector_registry_first)."""
    uses = worker_uses(w) or []
    if name not in ASCEND_DIRECTIONAL or t.classes or len(uses) != 1 or uses[0].children:
        return False
    return not uses[0].module_path or _registered_module(w, name, uses[0].module_path)


def _registered_module(w, name: str, module_path: str) -> bool:
    if not runs_vllm_ascend(w):
        return False
    modules = {m for m, _ in knowledge.transport_classes(ASCEND, name, frozenset(knowledge.transport_releases_read(ASCEND)))}
    releases, _ = vllm_releases(w)
    return module_path in modules and bool(releases) and releases <= knowledge.fact("vllm.connector_registry_first").releases


class DG211(Rule):
    """## What it does
    Reports vLLM instances of one file that use a connector whose direction is their `kv_role` (`P2pNcclConnector`,
    `MooncakeConnector`, and vLLM V0's `PyNcclConnector`, `LMCacheConnector` and `MooncakeStoreConnector`, by the class
    the targeted release loads for the name; vllm-ascend's `MooncakeConnectorV1` and `MooncakeHybridConnector`, by
    the name its plugin registers, also with a `kv_connector_module_path` that names the plugin's own module on a worker
    that runs vllm-ascend with a vLLM release that takes a registered name before the module path, 0.9.0-0.19.1) when no instance can send KV
    (all `kv_consumer`) or none can load it (all `kv_producer`), and an instance that a proxy of the file sends decode
    traffic to while it is `kv_producer` (or prefill traffic while it is `kv_consumer`). The finding points at one
    `kv_role` and names the other, or the proxy's address for it.

    ## Why is this bad?
    vLLM decides the direction from `kv_role` (`KVTransferConfig.is_kv_producer` / `is_kv_consumer`): the P2pNccl
    connector saves and sends KV only when it is a producer, and loads it only when it is a consumer. Two producers
    both prefill and send KV that nobody loads, so the decode side computes every prompt again; two consumers wait
    for KV that nobody sends. Either way no KV moves between them.

    ## Example
    ```bash
    vllm serve m --port 8100 --kv-transfer-config '{"kv_connector":"P2pNcclConnector","kv_role":"kv_consumer","kv_port":"21001"}' &
    vllm serve m --port 8200 --kv-transfer-config '{"kv_connector":"P2pNcclConnector","kv_role":"kv_consumer","kv_port":"22001"}' &
    ```

    ## Use instead
    ```bash
    vllm serve m --port 8100 --kv-transfer-config '{"kv_connector":"P2pNcclConnector","kv_role":"kv_producer","kv_port":"21001"}' &
    vllm serve m --port 8200 --kv-transfer-config '{"kv_connector":"P2pNcclConnector","kv_role":"kv_consumer","kv_port":"22001"}' &
    ```
    """

    code = "DG211"
    name = "kv-role-one-way"
    severity = Severity.ERROR

    def check(self, ctx):
        groups: dict[str, list] = {}
        for w in ctx.deployment.engines():
            conn, role = w.settings.get("kv_connector"), w.settings.get("kv_role")
            if conn is None or role is None or not conn.known or not role.known:
                continue
            t = transports(w, {str(conn.value)})
            if t is None or not (_directional(t) or _ascend_directional(w, t, str(conn.value))):
                continue
            groups.setdefault(str(conn.value), []).append(w)
        for name, ws in groups.items():
            roles = [str(w.known("kv_role")).lower() for w in ws]
            if len(ws) < 2 or (any(r in _LOADS for r in roles) and any(r in _SENDS for r in roles)):
                yield from self._routed(ctx, name, ws)
                continue
            first, second = ws[0], ws[1]
            if all(r == "kv_producer" for r in roles):
                what, want = "kv_producer: each sends KV that none loads, so the decode side prefills every prompt again", "kv_consumer"
            elif all(r == "kv_consumer" for r in roles):
                what, want = "kv_consumer: each waits for KV that none sends", "kv_producer"
            else:
                continue  # a kv_role vLLM rejects at start is not this rule's
            rel = ctx.related(second, second.where("kv_role"), f"{second.name}, also {roles[1]}")
            yield ctx.finding(self, first.where("kv_role"), f"{name}: all {len(ws)} instances ({', '.join(w.name for w in ws[:3])}) are {what}",
                              worker=first, related=(rel,), fix=Fix(f"set kv_role {want} on the {'decode' if want == 'kv_consumer' else 'prefill'} instance"))

    def _routed(self, ctx, name: str, ws: list):
        """A proxy of the file that sends decode traffic to a kv_producer, or prefill traffic to a kv_consumer, of a
        connector whose direction is the kv_role (the proxy's ports or URLs name the instance: schemas/roles.py)."""
        for w in ws:
            routed, role = w.settings.get("routed_as"), str(w.known("kv_role")).lower()
            if routed is None or (routed.value, role) not in (("decode", "kv_producer"), ("prefill", "kv_consumer")):
                continue
            what = "it never loads KV, so it prefills every prompt again" if role == "kv_producer" else "it never sends KV, so the decode side waits for KV that never comes"
            want = "kv_consumer" if role == "kv_producer" else "kv_producer"
            yield ctx.finding(self, w.where("kv_role"), f"{name}: {routed.origin} sends {w.name} {routed.value} traffic, but it is {role}: {what}",
                              worker=w, related=(ctx.related(w, routed.span, "the proxy's address for it"),),
                              fix=Fix(f"set kv_role {want} on {w.name}"))

