from __future__ import annotations

from typing import Any

from ...finding import Fix, Severity
from ...registry import Rule

_PORT = "VLLM_NIXL_SIDE_CHANNEL_PORT"
DEFAULT_PORT = "5600"  # vLLM >= 0.11.1; 5557 before, which is also the default KV-events port


def _envs(sec) -> dict[str, tuple[Any, tuple]]:
    """Environment variables of a section's ServiceArgs.envs, as name -> (value, path)."""
    raw = sec.own.get("ServiceArgs", {})
    envs = raw.get("envs") if isinstance(raw, dict) else None
    out = {}
    if isinstance(envs, dict):
        for k, v in envs.items():
            out[str(k)] = (v, (sec.name, "ServiceArgs", "envs", k))
    elif isinstance(envs, list):
        for i, item in enumerate(envs):
            if isinstance(item, dict) and "name" in item:
                out[str(item["name"])] = (item.get("value"), (sec.name, "ServiceArgs", "envs", i))
            elif isinstance(item, str) and "=" in item:
                k, _, v = item.partition("=")
                out[k] = (v, (sec.name, "ServiceArgs", "envs", i))
    return out


class DG207(Rule):
    """## What it does
    Reports NIXL side-channel ports that collide on one host: in a Dynamo v0 config, a fixed
    `VLLM_NIXL_SIDE_CHANNEL_PORT` in `ServiceArgs.envs` shared by several worker processes; in scripts and
    host-network compose files, two vLLM instances with the same port (or both on the default); and a side channel
    on 5557 (the pre-0.11.1 default) next to a KV-events publisher on 5557.

    ## Why is this bad?
    Every vLLM instance with the NIXL connector listens on its side-channel port for the handshake. Two instances
    on one host with the same port fail with "Address already in use" or stall at start-up
    (vllm-project/vllm#20965, #25059).

    ## Example
    ```yaml
    PrefillWorker:
      ServiceArgs:
        workers: 2
        envs: {VLLM_NIXL_SIDE_CHANNEL_PORT: "5600"}
    ```

    ## Use instead
    ```yaml
    PrefillWorker:
      ServiceArgs:
        workers: 2
    ```
    """

    code = "DG207"
    name = "nixl-side-channel-port-shared"
    severity = Severity.WARNING

    def check(self, ctx):
        if ctx.deployment is not None:
            yield from self._deployment(ctx)
            return
        ports = {}
        for name in ("VllmWorker", "PrefillWorker"):
            sec = ctx.section(name)
            if sec is None:
                continue
            env = _envs(sec)
            if _PORT not in env:
                continue
            port, path = env[_PORT]
            ports[name] = (str(port), path)
            if sec.model.service_args.workers > 1:
                yield ctx.finding(
                    self, path,
                    f"{name} runs {sec.model.service_args.workers} workers with the same {_PORT}={port}: on one host all but one fail to bind",
                    fix=Fix(f"drop {_PORT} and let each instance get its own port"),
                )
        if len(ports) == 2 and ports["VllmWorker"][0] == ports["PrefillWorker"][0]:
            yield ctx.finding(
                self, ports["PrefillWorker"][1],
                f"VllmWorker and PrefillWorker share {_PORT}={ports['VllmWorker'][0]}: on one host the second fails to bind",
                fix=Fix(f"give each worker its own {_PORT}"),
            )

    def _deployment(self, ctx):
        by_host: dict[str, list] = {}
        for w in ctx.deployment.workers:
            if w.engine in ("vllm", "dynamo.vllm") and str(w.get("kv_connector", "")).lower().startswith("nixl") and not w.host.startswith("pod:") and not w.host.startswith("service:"):
                by_host.setdefault(w.host, []).append(w)
            events = w.flags.get("kv-events-config")
            port = str(w.get("vllm_nixl_side_channel_port", ""))
            if events and port == "5557" and "5557" in str(events[0]):
                yield ctx.finding_at(self, w.where("vllm_nixl_side_channel_port"), f"{w.name}: the NIXL side channel and the KV-events publisher both use port 5557",
                                     fix=Fix("move VLLM_NIXL_SIDE_CHANNEL_PORT off 5557 (5600 is vLLM's default since 0.11.1)"))
        for workers in by_host.values():
            seen: dict[str, object] = {}
            for w in workers:
                port = str(w.get("vllm_nixl_side_channel_port", DEFAULT_PORT))
                if port in seen:
                    other = seen[port]
                    how = "both leave VLLM_NIXL_SIDE_CHANNEL_PORT at its default" if "vllm_nixl_side_channel_port" not in w.fields else f"both set VLLM_NIXL_SIDE_CHANNEL_PORT={port}"
                    yield ctx.finding_at(self, w.where("vllm_nixl_side_channel_port"), f"{w.name} and {other.name} run on the same host and {how} ({port}): the second fails to bind or stalls at start",
                                         fix=Fix("give each instance on a host its own VLLM_NIXL_SIDE_CHANNEL_PORT"), severity=Severity.ERROR)
                else:
                    seen[port] = w
