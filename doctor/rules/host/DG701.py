from __future__ import annotations

from ...finding import Fix, Severity
from . import HostRule


class DG701(HostRule):
    """## What it does
    Reports a host with more than one network path for UCX (two or more active RDMA ports, or two or more physical
    NICs that are up) where neither this environment nor the configs given set `UCX_NET_DEVICES`.

    ## Why is this bad?
    UCX then picks among all of them: KV can leave over the NIC that carries VM or management traffic instead of
    the fabric, and a worker dies or hangs at its first transfer (lightseekorg/smg PR#2520), or runs far below the
    fabric's bandwidth while working "functionally" (llm-d#2370).

    ## Example
    ```sh
    # two ConnectX ports and eth0 on this host; nothing sets UCX_NET_DEVICES
    vllm serve ... --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_both"}'
    ```

    ## Use instead
    ```sh
    UCX_NET_DEVICES=mlx5_0:1 vllm serve ... --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_both"}'
    ```
    """

    code = "DG701"
    name = "ucx-net-devices-unset"
    severity = Severity.WARNING

    def check_host(self, host):
        if host.settings("UCX_NET_DEVICES"):
            return
        rdma = host.facts.active_rdma()
        nics = host.facts.physical_nics()
        if len(rdma) < 2 and len(nics) < 2:
            return
        paths = [f"{p.device}:{p.port} ({p.link_layer})" for p in rdma] + [n.name for n in nics]
        yield host.finding(self, f"this host has {len(paths)} network paths UCX may use ({', '.join(paths)}) and UCX_NET_DEVICES is not set: "
                           "KV may leave over a NIC that is not the fabric", fix=Fix("set UCX_NET_DEVICES to the fabric port next to each GPU, e.g. mlx5_0:1"),
                           paths=paths)
