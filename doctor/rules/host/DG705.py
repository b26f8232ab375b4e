from __future__ import annotations

from ...finding import Fix, Severity
from . import HostRule
from .DG703 import lacks_active_messages


class DG705(HostRule):
    """## What it does
    Reports NIXL installed but unable to move KV here: its UCX backend does not start (NIXL and the UCX it loads do
    not resolve together), or the measured transfer between two local processes failed or read wrong bytes.

    ## Why is this bad?
    Every engine's NixlConnector fails at its first transfer (or at start), and the decode side either fails the
    request or recomputes the prompt, depending on `kv_load_failure_policy`.

    ## Example
    ```sh
    pip install nixl-cu12 && LD_LIBRARY_PATH=/opt/old-ucx/lib disagg doctor --env
    ```

    ## Use instead
    ```sh
    pip install nixl-cu12 && disagg doctor --env   # NIXL loads the UCX it was built with
    ```
    """

    code = "DG705"
    name = "nixl-cannot-transfer"
    severity = Severity.ERROR

    def check_host(self, host):
        nixl = host.facts.nixl
        tls = host.env.get("UCX_TLS")
        if tls is not None and lacks_active_messages(tls):
            cause, fix = f" (UCX_TLS={tls} in this environment lists no active-message transport: DG703)", Fix("fix UCX_TLS (DG703)")
        else:
            cause, fix = "", Fix("reinstall NIXL so that it loads its own UCX (and check LD_LIBRARY_PATH for another UCX)")
        if nixl.get("module") and not nixl.get("available"):
            yield host.finding(self, f"NIXL ({nixl['module']}) is installed but {nixl.get('error')}{cause}", fix=fix, error=nixl.get("error"))
            return
        transfer = nixl.get("transfer") or {}
        if transfer.get("error"):
            yield host.finding(self, f"a NIXL READ of {transfer.get('bytes')} bytes between two processes of this host failed: {transfer['error']}",
                               fix=Fix("run `python -m disagg.runtime.nixl_probe` with UCX_LOG_LEVEL=info to see why"), error=transfer["error"])
