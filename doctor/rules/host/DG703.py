from __future__ import annotations

from ...finding import Fix, Severity
from . import HostRule, tls_tokens

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
    active messages: only memory-copy transports such as `cuda_ipc`, `cuda_copy`, `gdr_copy` or `cma`.

    ## Why is this bad?
    UCX needs an active-message transport to connect endpoints and deliver NIXL's notifications; without one every
    transfer fails with "destination is unreachable" (ai-dynamo/nixl#1413).

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

    def check_host(self, host):
        for s in host.settings("UCX_TLS"):
            if lacks_active_messages(s.value):  # (an exclusion list, ^..., leaves the rest in)
                yield host.finding(self, f"UCX_TLS={s.value} has no transport that carries active messages: UCX cannot connect the workers "
                                   "(\"destination is unreachable\")", at=s, fix=Fix(f"add a network or shared-memory transport: UCX_TLS={s.value},rc,tcp"),
                                   value=s.value)
