from __future__ import annotations

from disagg.schemas import lightllm
from disagg.schemas.roles import flags_hidden

from ...finding import Fix, Severity
from ...registry import Rule


class DG641(Rule):
    """## What it does
    Reports a LightLLM prefill or decode server (`python -m lightllm.server.api_server --run_mode prefill|decode`)
    whose `--host` is `127.0.0.1` or `localhost`, or is not written (its default is `127.0.0.1`). A host set at run
    time, and a command whose arguments the file does not show (`"$@"`), are not judged.

    ## Why is this bad?
    A LightLLM prefill or decode server registers with its pd_master from a background task that first asserts "pd
    mode must specify host ip" against exactly those two values, and only then connects to the pd_master and sends
    `host:port` as the address the pd_master and the other servers reach it at. With a loopback host the assertion
    fails inside that task: the HTTP server runs, but it never registers, so the pd_master never sends it a request
    (and, with no prefill or no decode server registered, cannot serve at all).

    ## Example
    ```bash
    python -m lightllm.server.api_server --model_dir /models/m --run_mode decode --port 8121 \
      --pd_master_ip 10.0.0.2 --pd_master_port 60011
    ```

    ## Use instead
    ```bash
    python -m lightllm.server.api_server --model_dir /models/m --run_mode decode --host 10.0.0.3 --port 8121 \
      --pd_master_ip 10.0.0.2 --pd_master_port 60011
    ```
    """

    code = "DG641"
    name = "lightllm-pd-host-loopback"
    severity = Severity.ERROR

    def check(self, ctx):
        for w in ctx.deployment.workers:
            if w.program != "lightllm" or w.role not in ("prefill", "decode") or w.role_from != "flag":
                continue
            host = w.flags.get("host")
            if host is None and flags_hidden(w):
                continue
            if host is not None and (not host.known or str(host.value) not in lightllm.LOOPBACK_HOSTS):
                continue
            said = f"--host {host.value}" if host is not None else "no --host (LightLLM's default is 127.0.0.1)"
            yield ctx.finding(self, w.where("host") if host is not None else w.where("run_mode"),
                              f"{w.name} ({w.role}) runs with {said}: LightLLM asserts a prefill or decode server's host is no "
                              "loopback address before it registers with its pd_master, so this server starts but never registers "
                              f"and the pd_master never sends it a request [{lightllm.HOST_SOURCE}]",
                              worker=w, fix=Fix("give it --host with the address the pd_master and the other servers reach it at (0.0.0.0 registers the host's own IP)"))
