from __future__ import annotations

from disagg.schemas import knowledge

from ...finding import Fix, Severity
from ...registry import Rule
from .._connectors import is_dynamo_patched, is_nixl
from .._helpers import connector_of

_LOCAL = ("", "localhost", "127.0.0.1", "::1", "0.0.0.0")


class DG208(Rule):
    """## What it does
    Reports a vLLM prefill instance with the NIXL connector that runs in another network namespace than its decode
    instance (another pod, container or host) while `VLLM_NIXL_SIDE_CHANNEL_HOST` is unset or a local address.
    Dynamo's vLLM worker sets the host to its own address itself, and a Helm chart may set it, so those are not
    reported.

    ## Why is this bad?
    The prefill instance advertises the side-channel host in its transfer parameters and the decode instance
    connects there for the NIXL handshake. `localhost` (the default) points the decode instance at itself: the
    handshake fails and, with the old `recompute` policy, the decode instance silently redoes every prefill
    (vllm-project/vllm#27083).

    ## Example
    ```yaml
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
        reported = set()
        for pair in ctx.pairs:
            d, p = pair.decode, pair.prefill
            if p.engine != "vllm" or id(p) in reported or p.host.network == d.host.network:
                continue
            names, _ = connector_of(p)
            if not names or is_nixl(p, names) is not True or is_dynamo_patched(p, names):
                continue  # not vLLM's NIXL connector, a class we cannot compare (never a warning), or Dynamo's patched one (no side channel)
            if p.program == "dynamo.vllm" and knowledge.verdict(p.target, "dynamo", knowledge.pattern("dynamo", "vllm.side_channel_host_set").releases) is not False:
                continue
            if p.program.startswith("dynamo-v0") or any("chart" in n or "KServe" in n for n in p.notes):
                continue
            s = p.settings.get("side_channel_host")
            if s is not None and not s.known:
                continue
            host = str(s.value).strip().lower() if s is not None else ""
            if host in _LOCAL:
                reported.add(id(p))
                yield ctx.pair_finding(self, pair, p, p.where("side_channel_host"),
                                       f"{p.name} (prefill) runs in another network than {d.name} (decode) but advertises NIXL side-channel host "
                                       f"{host or 'localhost (the default)'}: the decode side's handshake will reach itself",
                                       fix=Fix("set VLLM_NIXL_SIDE_CHANNEL_HOST to the pod's IP (fieldRef status.podIP) or the host's address"))
