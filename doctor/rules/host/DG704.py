from __future__ import annotations

from ...finding import Fix, Severity
from . import HostRule, tls_tokens

RDMA_TLS = ("all", "rc", "rc_v", "rc_x", "rc_mlx5", "rc_verbs", "ud", "ud_v", "ud_x", "ud_mlx5", "ud_verbs", "dc", "dc_x", "dc_mlx5", "ib", "srd")


class DG704(HostRule):
    """## What it does
    Reports KV held to TCP on a host that has active RDMA ports: a `UCX_TLS` that allows `tcp` but no RDMA transport,
    or a measured NIXL transfer between two processes of this host that UCX carried over TCP.

    ## Why is this bad?
    The deployment works "functionally" at a fraction of the fabric's bandwidth and with far higher latency: an
    admission webhook that injected `UCX_TLS=tcp` did exactly that (sgl-project/ome#837); UCX also falls back to
    TCP silently when its RDMA libraries do not load (ai-dynamo/modelexpress PR#259).

    ## Example
    ```sh
    UCX_TLS=tcp,cuda_copy   # on a host with mlx5 ports up
    ```

    ## Use instead
    ```sh
    UCX_TLS=rc,cuda_copy,cuda_ipc,tcp
    ```
    """

    code = "DG704"
    name = "tcp-where-rdma-exists"
    severity = Severity.WARNING

    def check_host(self, host):
        ports = host.facts.active_rdma()
        if not ports:
            return
        names = ", ".join(f"{p.device}:{p.port}" for p in ports)
        for s in host.settings("UCX_TLS"):
            tokens = [t.lstrip("\\") for t in tls_tokens(s.value)]
            if tokens and not tokens[0].startswith("^") and "tcp" in tokens and not any(t in RDMA_TLS for t in tokens):
                yield host.finding(self, f"UCX_TLS={s.value} keeps KV on TCP while this host has active RDMA ports ({names})", at=s,
                                   fix=Fix("add an RDMA transport (rc, or dc on large clusters) before tcp"), value=s.value)
        transfer = host.facts.nixl.get("transfer") or {}
        used = transfer.get("transports") or []
        if used and all(t.startswith("tcp") for t in used):
            yield host.finding(self, f"a NIXL transfer between two processes here went over {', '.join(used)} although RDMA ports are active ({names}): "
                               "UCX did not use them", fix=Fix("check that UCX's RDMA libraries load (ucx_info -d lists rc/dc on the mlx5 devices)"),
                               measured=used)
