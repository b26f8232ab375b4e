from __future__ import annotations

from ...finding import Fix, Severity
from . import HostRule, devices


class DG706(HostRule):
    """## What it does
    Compares what the config files given ask of this host with what it has: a worker's `UCX_NET_DEVICES` that names
    a device this host does not have (neither an RDMA device nor a network interface).

    ## Why is this bad?
    UCX then finds none of the devices it is told to use and the worker fails to create its endpoint, or (with a
    list) quietly uses only the devices that exist.

    ## Example
    ```yaml
    env:
      - {name: UCX_NET_DEVICES, value: "mlx5_7:1"}   # this host has mlx5_0..mlx5_3
    ```

    ## Use instead
    ```yaml
    env:
      - {name: UCX_NET_DEVICES, value: "mlx5_0:1"}
    ```
    """

    code = "DG706"
    name = "ucx-device-absent"
    severity = Severity.WARNING

    def check_host(self, host):
        have = {p.device for p in host.facts.rdma} | {n.name for n in host.facts.nics}
        for s in host.settings("UCX_NET_DEVICES"):
            missing = [d for d in devices(s.value) if d.lower() != "all" and d not in have]
            if missing:
                yield host.finding(self, f"UCX_NET_DEVICES={s.value} names {', '.join(missing)}, which this host does not have "
                                   f"(it has {', '.join(sorted(have)) or 'none'})", at=s, fix=Fix("name devices this host has (`ls /sys/class/infiniband`)"),
                                   missing=missing)
