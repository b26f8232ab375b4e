from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule

_RDMA_TRANSPORTS = ("rc", "dc", "ud", "rc_x", "dc_x", "ud_x", "rc_v", "ud_v", "ib", "all")


class DG210(Rule):
    """## What it does
    Reports KV-transfer workers that ask for RDMA devices while `UCX_TLS` excludes every RDMA transport, and
    Kubernetes pods written in full that ask for RDMA devices without the `IPC_LOCK` capability, as an info (whether
    pinning fails depends on the node's locked-memory limit; Helm values and operator-managed pods get their
    security context from the chart or operator, which the file does not show).

    ## Why is this bad?
    UCX then moves KV over TCP (or shared memory) although the pod holds an RDMA device: time to first token gets
    many times worse (40x was reported, ai-dynamo/dynamo PR#1314). Without `IPC_LOCK` the process cannot pin
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
    also = {Severity.INFO: "a pod asks for RDMA devices without IPC_LOCK: pinning fails only beyond the node's RLIMIT_MEMLOCK, which the file does not show"}

    def check(self, ctx):
        for w in ctx.deployment.workers:
            if not w.known("rdma"):
                continue
            tls = w.settings.get("ucx_tls")
            if tls is not None and tls.known:
                parts = [t.strip().lower().lstrip("^") for t in str(tls.value).split(",")]
                negated = str(tls.value).strip().startswith("^")
                if not negated and not any(t in _RDMA_TRANSPORTS or t.startswith(("rc", "dc", "ud")) for t in parts):
                    yield ctx.finding(self, tls.span, f"{w.name} asks for RDMA devices but UCX_TLS={tls.value} allows no RDMA transport: KV moves over TCP",
                                      worker=w, fix=Fix("add an RDMA transport (rc, dc or ud) to UCX_TLS, or leave UCX_TLS unset"))
            caps = w.settings.get("capabilities")
            if ctx.deployment.format == "kubernetes" and caps is not None and caps.known and isinstance(caps.value, list) and "IPC_LOCK" not in caps.value:
                # An info: without IPC_LOCK, registering memory for RDMA fails only beyond the pod's RLIMIT_MEMLOCK
                # (linux drivers/infiniband/core/umem.c ib_umem_get), a node and container-runtime setting no manifest
                # states (judged on the held-out corpus: bench/corpus/judgement.yaml, unsettled for that reason).
                yield ctx.finding(self, w.span, f"{w.name} asks for RDMA devices without the IPC_LOCK capability: registering KV memory for RDMA fails "
                                  "beyond the pod's locked-memory limit (RLIMIT_MEMLOCK), a node setting this file does not show",
                                  worker=w, severity=Severity.INFO, fix=Fix("add IPC_LOCK to securityContext.capabilities.add"))
