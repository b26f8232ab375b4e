from __future__ import annotations

from typing import Any

from ...finding import Fix, Severity
from ...registry import Rule

_PORT = "VLLM_NIXL_SIDE_CHANNEL_PORT"


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
    Reports a fixed `VLLM_NIXL_SIDE_CHANNEL_PORT` in `ServiceArgs.envs` shared by several worker processes: a
    service with `workers` above 1, or the decode and prefill workers set to the same port.

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
