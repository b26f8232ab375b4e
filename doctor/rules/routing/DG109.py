from __future__ import annotations

from disagg.schemas.pairing import concurrent
from disagg.schemas.roles import ROUTED_ENGINE, local_url, url_names_server

from ...finding import Fix, Severity
from ...registry import Rule

_SYSTEM_ROLE = ("flag", "connector", "field", "router")
_LISTS = {"sglang-router": ("--prefill", "--decode"), "trtllm-disagg-server": ("context_servers.urls", "generation_servers.urls")}


class DG109(Rule):
    """## What it does
    Reports a server that a P/D router started beside it never sends a request to: SGLang's PD router with static
    `--prefill URL` / `--decode URL` lists, or `trtllm-serve disaggregated` with its config's `context_servers.urls` and
    `generation_servers.urls`, that names servers of the same script on this machine, while another server of the
    router's engine, started in the same run on the same machine, is on a port none of its URLs names.

    ## Why is this bad?
    Set up this way, both routers send each request only to the URLs they were given (SGLang's router picks among its
    `--prefill` and `--decode` workers; TensorRT-LLM's disaggregated server among the servers `extract_ctx_gen_cfgs`
    builds from the URLs, NVIDIA/TensorRT-LLM@0228a71 tensorrt_llm/llmapi/disagg_utils.py). Where servers can join at
    run time it says nothing: a TensorRT-LLM metadata server (`-m`) or `disagg_cluster`, a server started with
    `--metadata_server_config_file` or `--disagg_cluster_uri`, SGLang's `--service-discovery`, or a script that
    registers workers through the router's API (`/workers`, `/add_worker`). A prefill server left out of the list is
    a prefill GPU at 0%, whatever it runs with; a URL with a wrong port next to it usually names nothing (or the other
    side, DG107). The check is made only where every URL of the router names this machine with a written port, so a
    server the URLs could reach under another address is never reported.

    ## Example
    ```bash
    python -m sglang.launch_server --model-path m --port 30001 --disaggregation-mode prefill &
    python -m sglang.launch_server --model-path m --port 30002 --disaggregation-mode decode &
    python -m sglang_router.launch_router --pd-disaggregation --prefill http://127.0.0.1:30000 --decode http://127.0.0.1:30002 &
    ```

    ## Use instead
    ```bash
    python -m sglang_router.launch_router --pd-disaggregation --prefill http://127.0.0.1:30001 --decode http://127.0.0.1:30002 &
    ```
    """

    code = "DG109"
    name = "server-not-routed"
    severity = Severity.WARNING
    also = {Severity.INFO: "the server left out has no prefill or decode role, nor a KV transfer set up, that its own flags, connector "
                           "or manifest give it (an aggregated baseline may be meant to run beside the router)"}

    def check(self, ctx):
        registers = any(path in line for line in ctx.deployment.lines for path in _REGISTER)
        for router in ctx.deployment.workers:
            if router.program not in ROUTED_ENGINE or not _static(router, registers):
                continue
            engine, default_port = ROUTED_ENGINE[router.program]
            urls = []
            for key in ("router_prefill", "router_decode"):
                s = router.settings.get(key)
                urls += [u for u, _ in (s.value if s is not None and isinstance(s.value, list) else [])]
            servers = [w for w in ctx.deployment.workers if w.engine == engine and w.is_engine and w.host.network == router.host.network
                       and concurrent(w, router)]
            if not urls or not servers or not self._all_here(router, urls, servers, default_port):
                continue
            named = [w for w in servers if any(url_names_server(router, u, w, default_port) for u in urls)]
            if not named:
                continue  # the router's URLs name none of these servers: it may be another deployment's router
            for w in servers:
                if w in named or any(f in w.flags for f in _SELF_REGISTER):
                    continue
                port = w.known("port", default_port)
                role = w.role if w.role in ("prefill", "decode") and w.role_from in _SYSTEM_ROLE else None
                # a server set up to move KV (its mode, or TensorRT-LLM's cache transceiver) is one of the P/D servers;
                # one with neither may be a baseline run beside the router on purpose
                pd = role is not None or w.settings.get("cache_transceiver") is not None
                lists = _LISTS[router.program]
                what = role or ("requests (it runs a KV cache transceiver: a P/D server)" if pd else "requests")
                yield ctx.finding(self, w.where("port") if "port" in w.settings else w.span,
                                  f"{w.name} serves {what} on port {port}, but {router.name} sends requests only to "
                                  f"{', '.join(dict.fromkeys(urls))}: this server gets none" + (f", so its {role} GPUs stay idle" if role else ""),
                                  worker=w, severity=None if pd else Severity.INFO,
                                  related=(ctx.related(router, router.span, f"{router.name}, whose {' and '.join(lists)} leave it out"),),
                                  fix=Fix(f"add http://127.0.0.1:{port} to the router's {lists[0] if role != 'decode' else lists[1]}, or stop starting this server"))

    @staticmethod
    def _all_here(router, urls, servers, default_port) -> bool:
        """Every URL names this machine with a written port (so whether it names a server is known for each)."""
        return all(url_names_server(router, u, servers[0], default_port) is not None and local_url(u) for u in urls)


# Where the router takes servers that are not in its lists, it is not checked: TensorRT-LLM's disaggregated server
# with a metadata server (`-m`: "If metadata server is available, ignore static server list entirely",
# tensorrt_llm/serve/router.py fetch_live_servers) or a `disagg_cluster` (servers join at run time), servers started
# with `--metadata_server_config_file` / `--disagg_cluster_uri` (they register themselves, commands/serve.py), SGLang's
# router with `--service-discovery`, and any script that registers workers with the router's API (`POST /workers`,
# `/add_worker` in older releases: sgl-project/sglang@0f4513c docs/advanced_features/sgl_model_gateway.md)
_SELF_REGISTER = ("metadata-server-config-file", "disagg-cluster-uri")  # flag names as parse_flags keeps them (with dashes)
_REGISTER = ("/workers", "/add_worker")


def _static(router, registers: bool) -> bool:
    if router.program == "trtllm-disagg-server":
        return "metadata_server" not in router.settings and "disagg_cluster" not in router.settings
    return "service-discovery" not in router.flags and not registers
