from __future__ import annotations

from ...finding import Fix, Severity
from .._connectors import is_nixl
from .._helpers import connector_of
from . import HostRule, host_context, tls_tokens

# UCX transports that carry active messages (UCP's wire-up and NIXL's notifications need one): the network ones and
# shared memory (posix, sysv; `sm`/`shm` name them). cuda_copy, cuda_ipc, gdr_copy, rocm_*, cma, knem and xpmem
# move memory only. Source: openucx/ucx docs/source/faq (UCX_TLS aliases) and ai-dynamo/nixl#1413 ("destination
# unreachable" with UCX_TLS=cuda_ipc,cuda_copy).
AM_CAPABLE = ("all", "tcp", "rc", "rc_v", "rc_x", "rc_mlx5", "rc_verbs", "ud", "ud_v", "ud_x", "ud_mlx5", "ud_verbs", "dc", "dc_x", "dc_mlx5",
              "ib", "sm", "shm", "posix", "sysv", "mm", "srd")


def lacks_active_messages(value: str) -> bool:
    tokens = tls_tokens(value)
    return bool(tokens) and not tokens[0].startswith("^") and not any(t.lstrip("\\") in AM_CAPABLE for t in tokens)


class DG703(HostRule):
    """## What it does
    Reports a `UCX_TLS` (in this environment or a config's worker env) that lists no transport able to carry
    active messages: only memory-copy transports such as `cuda_ipc`, `cuda_copy`, `gdr_copy` or `cma`. It also
    runs on configs alone (`disagg doctor FILES`), for workers whose KV moves over NIXL's UCX backend: vLLM's
    NixlConnector (UCX unless its `backends` say otherwise), SGLang's `nixl` transfer backend.

    ## Why is this bad?
    UCX needs an active-message transport to connect endpoints and deliver NIXL's notifications; without one every
    transfer fails with "destination is unreachable" (ai-dynamo/nixl#1413).
    TensorRT-LLM's `UCX` cache transceiver backend connects the same way.

    ## Example
    ```sh
    UCX_TLS=cuda_ipc,cuda_copy
    ```

    ## Use instead
    ```sh
    UCX_TLS=cuda_ipc,cuda_copy,rc,tcp
    ```
    """

    code = "DG703"
    name = "ucx-tls-no-active-messages"
    severity = Severity.ERROR
    live = False  # also a config rule: a worker's own UCX_TLS needs no host to judge
    reads_configs = True

    def check(self, ctx):
        if host_context(ctx) is not None:
            yield from self.check_host(ctx)
            return
        dep = getattr(ctx, "deployment", None)
        for w in dep.workers if dep is not None else ():
            s = w.env.get("UCX_TLS")
            if s is None or not s.known or not isinstance(s.value, str) or "$" in s.value or not lacks_active_messages(s.value):
                continue
            if not _over_ucx(w):
                continue
            over = "TensorRT-LLM's UCX cache transceiver" if w.engine == "trtllm" else "NIXL's UCX backend"
            yield ctx.finding(self, s.span, f"{w.name}: UCX_TLS={s.value} has no transport that carries active messages: {over} "
                              "cannot connect the workers (\"destination is unreachable\")", worker=w,
                              fix=Fix(f"add a network or shared-memory transport: UCX_TLS={s.value},rc,tcp"))

    def check_host(self, host):
        for s in host.settings("UCX_TLS"):
            if lacks_active_messages(s.value):  # (an exclusion list, ^..., leaves the rest in)
                yield host.finding(self, f"UCX_TLS={s.value} has no transport that carries active messages: UCX cannot connect the workers "
                                   "(\"destination is unreachable\")", at=s, fix=Fix(f"add a network or shared-memory transport: UCX_TLS={s.value},rc,tcp"),
                                   value=s.value)


def _over_ucx(w) -> bool:
    """True when the file says this worker moves KV with NIXL over UCX: vLLM's NixlConnector, whose default
    `backends` is ["UCX"] (vllm nixl_connector.py kv_connector_extra_config.get("backends", ["UCX"])), unless its
    kv_connector_extra_config names others; SGLang's `--disaggregation-transfer-backend nixl` (NIXL agent with its
    UCX backend, sglang disaggregation/nixl/conn.py); TensorRT-LLM's `cache_transceiver_config.backend: UCX`, which
    moves KV with UCX directly (wxsms/dynamo@2c3066bd, a fork of ai-dynamo/dynamo,
    fern/pages/backends/trtllm/kv-cache-transfer.md "Alternative Method: UCX"; only the value written: what DEFAULT
    picks depends on the release)."""
    if w.engine == "trtllm":
        return str(w.known("transfer_backend", "")).upper() == "UCX"
    if w.engine == "sglang":
        return str(w.known("transfer_backend", "")).lower() == "nixl"
    if w.engine != "vllm" or is_nixl(w, connector_of(w)[0] or None) is not True:
        return False
    cfg = w.known("kv_config")
    extra = cfg.get("kv_connector_extra_config") if isinstance(cfg, dict) else None
    backends = extra.get("backends") if isinstance(extra, dict) else None
    return backends is None or (isinstance(backends, list) and any(str(b).upper() == "UCX" for b in backends))
