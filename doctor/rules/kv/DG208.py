from __future__ import annotations

from disagg.schemas import knowledge

from ...finding import Fix, Severity
from ...registry import Rule
from .._connectors import is_dynamo_patched, is_nixl
from .._helpers import connector_of

_LOCAL = ("", "localhost", "127.0.0.1", "::1", "0.0.0.0")


def _loopback_only(w) -> tuple[str, object] | None:
    """`UCX_NET_DEVICES` as written when it names loopback devices only (`lo`), with its setting."""
    s = w.env.get("UCX_NET_DEVICES")
    if s is None or not s.known or not isinstance(s.value, str) or not s.value.strip():
        return None
    devices = [d.strip().split(":")[0] for d in s.value.split(",") if d.strip()]
    return (s.value, s) if devices and all(d in ("lo", "lo0") for d in devices) else None


def _speaks_nixl(w) -> bool:
    """KV moves over NIXL (whose default backend is UCX): a vLLM connector whose class is vLLM's NIXL connector (by the
    release's connector factory, never by its name), TensorRT-LLM's NIXL cache transceiver, SGLang's nixl transfer
    backend."""
    if w.engine == "sglang":
        return str(w.known("transfer_backend", "")).lower() == "nixl"
    names, _ = connector_of(w)
    if not names:
        return False
    if w.engine == "trtllm":
        return any(n.lower() == "cache_transceiver:nixl" for n in names)
    return is_nixl(w, set(names)) is True


class DG208(Rule):
    """## What it does
    Reports a vLLM prefill instance with the NIXL connector that runs in another network namespace than its decode
    instance (another pod, container or host) while `VLLM_NIXL_SIDE_CHANNEL_HOST` is unset or a local address. Where
    it runs is taken from what the file states; a host named at run time, a process Slurm or MPI places (`srun`,
    `mpirun`) or a hostNetwork pod not pinned to a node may share the other's network, and is not reported.
    Dynamo's vLLM worker sets the host to its own address itself, and a Helm chart may set it, so those are not
    reported. Also reports either end of such a pair moving KV over NIXL with `UCX_NET_DEVICES` set to loopback
    devices only (`lo`): UCX then uses only the loopback interface (UCX_NET_DEVICES selects the devices UCX may use:
    openucx/ucx docs, NVIDIA DOCA UCX guide), which cannot reach a peer in another pod or on another node.

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
    on_roles = True
    also = {Severity.INFO: "a Dynamo vLLM worker that writes a local VLLM_NIXL_SIDE_CHANNEL_HOST (whether Dynamo keeps it depends on the release)"}

    def check(self, ctx):
        yield from self._ucx_loopback(ctx)
        reported = set()
        for pair in ctx.pairs:
            d, p = pair.decode, pair.prefill
            if p.engine != "vllm" or id(p) in reported or p.host.apart(d.host) is not True:
                continue
            names, _ = connector_of(p)
            if not names or is_nixl(p, names) is not True or is_dynamo_patched(p, names):
                continue  # not vLLM's NIXL connector, a class we cannot compare (never a warning), or Dynamo's patched one (no side channel)
            if p.program == "dynamo.vllm" and knowledge.verdict(p.target, "dynamo", knowledge.pattern("dynamo", "vllm.side_channel_host_set").releases) is not False:
                written = p.settings.get("side_channel_host")
                if written is not None and written.written and written.known and str(written.value).strip().lower() in _LOCAL and id(p) not in reported:
                    # Dynamo's worker sets the host itself; the releases with ensure_side_channel_host keep a value the
                    # user wrote ("without overriding user settings", ai-dynamo/dynamo components/src/dynamo/vllm/args.py),
                    # older ones overwrote it. Which one runs here is not known: at most a note.
                    reported.add(id(p))
                    yield ctx.pair_finding(self, pair, p, written.span, f"{p.name} (prefill) sets VLLM_NIXL_SIDE_CHANNEL_HOST={written.value} and runs in another "
                                           f"network than {d.name} (decode): Dynamo releases that keep a host the user set advertise it, and the decode "
                                           "side's handshake then reaches itself", severity=Severity.INFO,
                                           fix=Fix("remove VLLM_NIXL_SIDE_CHANNEL_HOST (Dynamo sets the pod's address) or set it to the pod's IP"))
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

    def _ucx_loopback(self, ctx):
        reported = set()
        for pair in ctx.pairs:
            if pair.prefill.host.apart(pair.decode.host) is not True:
                continue
            for w in pair.ends():
                found = _loopback_only(w) if _speaks_nixl(w) else None
                if found is None or id(w) in reported:
                    continue
                reported.add(id(w))
                other = pair.decode if w is pair.prefill else pair.prefill
                value, s = found
                yield ctx.pair_finding(self, pair, w, s.span, f"{w.name} ({w.role}) moves KV over NIXL with UCX_NET_DEVICES={value}: UCX may use the loopback "
                                       f"interface only, which cannot reach {other.name} ({other.role}) in another network (pod, container or host)",
                                       fix=Fix("set UCX_NET_DEVICES to the interfaces that reach the other side (or leave it unset)"))
