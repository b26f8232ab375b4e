from __future__ import annotations

from disagg.schemas.pairing import ByBranch

from ...finding import Fix, Severity
from ...registry import Rule
from .._connectors import is_dynamo_patched, is_nixl
from .._helpers import connector_of
from .._ports import side_channel_port as _port


def _nixl(w) -> bool:
    """The worker loads vLLM's NIXL connector class in the release it targets (an unknown class is not reported), one
    with a side channel: Dynamo's patched-vLLM DynamoNixlConnector (0.7.2/0.8.4) has none, and those vLLM releases
    define no VLLM_NIXL_SIDE_CHANNEL_PORT (generated vllm-env table: 0.9.0 on)."""
    names, _ = connector_of(w)
    return bool(names) and is_nixl(w, names) is True and not is_dynamo_patched(w, names)


class DG207(Rule):
    """## What it does
    Reports vLLM instances with the NIXL connector that share a network namespace (one script's processes,
    host-network containers, host-network pods pinned to one node, several workers of one Dynamo v0 service) and
    listen on the same NIXL side-channel port: the same `VLLM_NIXL_SIDE_CHANNEL_PORT`, or both on the default.

    ## Why is this bad?
    Every vLLM instance with the NIXL connector listens on its side-channel port for the handshake. Two in one
    network namespace with one port fail with "Address already in use" or stall at start-up (vllm-project/vllm#20965,
    #25059). Pods each have their own network, and Dynamo's vLLM worker reserved a port per worker in releases
    0.4-0.6 (`configure_ports_with_etcd`), so those are not reported.

    ## Example
    ```bash
    VLLM_NIXL_SIDE_CHANNEL_PORT=5600 vllm serve m --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_both"}' &
    VLLM_NIXL_SIDE_CHANNEL_PORT=5600 vllm serve m --port 8200 --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_both"}' &
    ```

    ## Use instead
    ```bash
    VLLM_NIXL_SIDE_CHANNEL_PORT=5600 vllm serve m --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_both"}' &
    VLLM_NIXL_SIDE_CHANNEL_PORT=5601 vllm serve m --port 8200 --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_both"}' &
    ```
    """

    code = "DG207"
    name = "nixl-side-channel-port-shared"
    severity = Severity.ERROR

    def check(self, ctx):
        by_net: dict[str, list] = {}
        for w in ctx.deployment.workers:
            if w.engine != "vllm" or not w.is_engine or w.known("engine_part") or not _nixl(w) or w.host.kind == "pod":
                continue
            if w.program.startswith("dynamo-v0") and "side_channel_port" not in w.settings:
                continue  # Dynamo v0's example workers: DynamoNixlConnector has no side channel, and how the vLLM v1 ones set it is not in the file
            if w.host.network.startswith("unpinned-host:"):
                continue  # hostNetwork pods not pinned to one node may land on different nodes
            by_net.setdefault(w.host.network, []).append(w)
            port, written = _port(w)
            n = w.replicas.value if isinstance(w.replicas.value, int) else 1
            if written and port and n > 1 and w.host.kind == "process" and w.section is not None and not is_dynamo_patched(w, connector_of(w)[0]):
                yield ctx.finding(self, w.where("side_channel_port"), f"{w.name} runs {n} workers with the same VLLM_NIXL_SIDE_CHANNEL_PORT={port}: "
                                  "on one host all but one fail to bind", worker=w, fix=Fix("drop VLLM_NIXL_SIDE_CHANNEL_PORT and let each instance get its own port"))
        for workers in by_net.values():
            seen: dict[str, ByBranch] = {}  # only processes that run in one invocation of a script share its network
            for w in workers:
                port, written = _port(w)
                if port is None:
                    continue
                other = next(seen[port].meeting(w, one_invocation=True), None) if port in seen else None
                if other is not None:
                    how = "both leave VLLM_NIXL_SIDE_CHANNEL_PORT at its default" if port == "default" else f"both set VLLM_NIXL_SIDE_CHANNEL_PORT={port}"
                    rel = ctx.related(other, other.where("side_channel_port"), f"{other.name} uses the same port")
                    yield ctx.finding(self, w.where("side_channel_port"), f"{w.name} and {other.name} share a network and {how}: the second fails to bind or stalls at start",
                                      worker=w, related=(rel,), fix=Fix("give each instance on a host its own VLLM_NIXL_SIDE_CHANNEL_PORT"))
                else:
                    seen.setdefault(port, ByBranch()).add(w)
