from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule

_LOCAL = ("", "localhost", "127.0.0.1", "::1")


class DG208(Rule):
    """## What it does
    Reports vLLM instances with the NIXL connector that run on different hosts (pods, containers) while
    `VLLM_NIXL_SIDE_CHANNEL_HOST` is unset or `localhost`.

    ## Why is this bad?
    The prefill instance advertises its side-channel host in the KV transfer parameters; the decode instance then
    connects there for the NIXL handshake. `localhost` (the default) points the decode instance at itself: the
    handshake fails and, with the old `recompute` policy, the decode instance silently redoes every prefill
    (vllm-project/vllm#27083).

    ## Example
    ```yaml
    # two Deployments (prefill, decode), neither sets the side-channel host
    env: [{name: VLLM_NIXL_SIDE_CHANNEL_PORT, value: "5600"}]
    ```

    ## Use instead
    ```yaml
    env:
      - name: VLLM_NIXL_SIDE_CHANNEL_HOST
        valueFrom: {fieldRef: {fieldPath: status.podIP}}
    ```
    """

    code = "DG208"
    name = "nixl-side-channel-host-local"
    severity = Severity.WARNING

    def check(self, ctx):
        dep = ctx.deployment
        if dep is None or not dep.multi_host:
            return
        for w in dep.of_role("prefill"):
            # Dynamo's vLLM worker sets the side-channel host to its own address itself; plain vLLM does not.
            if w.engine != "vllm" or not str(w.get("kv_connector", "")).lower().startswith("nixl"):
                continue
            host = str(w.get("vllm_nixl_side_channel_host", "")).strip().lower()
            if host in _LOCAL:
                yield ctx.finding_at(
                    self, w.where("vllm_nixl_side_channel_host"),
                    f"{w.name} (prefill) runs on another host than its decode instances but advertises NIXL side-channel host "
                    f"{host or 'localhost (the default)'}: the decode side's handshake will reach itself",
                    fix=Fix("set VLLM_NIXL_SIDE_CHANNEL_HOST to the pod's IP (fieldRef status.podIP) or the host's address"),
                )
