from __future__ import annotations

from ...finding import Fix, Severity
from . import HostRule, devices


class DG702(HostRule):
    """## What it does
    Reports a `UCX_NET_DEVICES` whose devices all sit on another NUMA node than the GPUs of this host (NUMA nodes
    read from sysfs: `/sys/class/infiniband/DEV/device/numa_node`, `/sys/class/net/DEV/device/numa_node`, and each
    GPU's PCI device).

    ## Why is this bad?
    Every KV byte then crosses the socket interconnect between the GPU and the NIC (and GPUDirect RDMA may be
    refused), so transfers run well below the NIC's rate.

    ## Example
    ```sh
    UCX_NET_DEVICES=mlx5_3:1   # mlx5_3 on NUMA node 1, the GPUs on node 0
    ```

    ## Use instead
    ```sh
    UCX_NET_DEVICES=mlx5_0:1   # the port on the GPUs' node
    ```
    """

    code = "DG702"
    name = "ucx-device-across-numa"
    severity = Severity.WARNING

    def check_host(self, host):
        gpu_nodes = {g.numa_node for g in host.facts.gpus if g.numa_node is not None}
        if not gpu_nodes:
            return
        node_of = {p.device: p.numa_node for p in host.facts.rdma} | {n.name: n.numa_node for n in host.facts.nics}
        for s in host.settings("UCX_NET_DEVICES"):
            nodes = {node_of.get(d) for d in devices(s.value)} - {None}
            if nodes and not nodes & gpu_nodes:
                yield host.finding(self, f"UCX_NET_DEVICES={s.value} is on NUMA node {', '.join(map(str, sorted(nodes)))} and the GPUs on "
                                   f"{', '.join(map(str, sorted(gpu_nodes)))}: every KV byte crosses the sockets", at=s,
                                   fix=Fix("choose the port on the GPUs' NUMA node (nvidia-smi topo -m shows the pairs)"), devices=s.value)
