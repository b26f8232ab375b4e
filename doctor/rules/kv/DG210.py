from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule

_RDMA_TRANSPORTS = ("rc", "ud", "dc", "rc_x", "ud_x", "dc_x", "ib", "rdma", "all", "^tcp")


class DG210(Rule):
    """## What it does
    Reports KV-transfer workers that ask for RDMA devices while `UCX_TLS` excludes every RDMA transport, and
    workers that ask for RDMA devices without the `IPC_LOCK` capability.

    ## Why is this bad?
    Without an RDMA transport UCX falls back to TCP: transfers still work, at a fraction of the speed (time to
    first token 40× worse was reported, ai-dynamo/dynamo PR#1314). Without `IPC_LOCK` the process cannot pin
    memory for RDMA and UCX again falls back, or fails to register the KV cache.

    ## Example
    ```yaml
    resources: {limits: {rdma/ib: 1}}
    env: [{name: UCX_TLS, value: "tcp,cuda_copy"}]
    ```

    ## Use instead
    ```yaml
    resources: {limits: {rdma/ib: 1}}
    securityContext: {capabilities: {add: [IPC_LOCK]}}
    env: [{name: UCX_TLS, value: "rc,cuda_copy,cuda_ipc"}]
    ```
    """

    code = "DG210"
    name = "rdma-transport-missing"
    severity = Severity.WARNING

    def check(self, ctx):
        if ctx.deployment is None:
            return
        for w in ctx.deployment.workers:
            if not w.extra.get("rdma"):
                continue
            tls = w.get("ucx_tls")
            if tls is not None:
                parts = [t.strip().lower() for t in str(tls).split(",")]
                if not any(t in _RDMA_TRANSPORTS or t.startswith(("rc", "dc", "ud")) for t in parts):
                    yield ctx.finding_at(self, w.where("ucx_tls"), f"{w.name} asks for RDMA devices but UCX_TLS={tls} allows no RDMA transport: KV moves over TCP",
                                         fix=Fix("add an RDMA transport (rc, dc or ud) to UCX_TLS, or leave UCX_TLS unset"))
            if "IPC_LOCK" not in w.extra.get("capabilities", []):
                yield ctx.finding_at(self, w.span, f"{w.name} asks for RDMA devices without the IPC_LOCK capability: memory cannot be pinned for RDMA",
                                     fix=Fix("add IPC_LOCK to securityContext.capabilities.add"))
