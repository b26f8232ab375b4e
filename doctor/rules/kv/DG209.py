from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule


class DG209(Rule):
    """## What it does
    Reports `kv_load_failure_policy: recompute` in a vLLM `--kv-transfer-config`.

    ## Why is this bad?
    With `recompute`, a decode instance whose KV transfer fails (a dead prefill instance, an expired block, a
    handshake error) prefills the prompt again itself, and says nothing. The prefill GPUs work for nothing
    and time to first token doubles, invisibly. vLLM changed the default to `fail` for this reason
    (vllm-project/vllm#32200).
    A prefill or aggregated worker is not reported: no prefill instance hands it KV, and what it loads comes from a
    KV store or offload tier, where recomputing a block that fails to load is the design.

    ## Example
    ```yaml
    args: ["--kv-transfer-config", '{"kv_connector":"NixlConnector","kv_role":"kv_both","kv_load_failure_policy":"recompute"}']
    ```

    ## Use instead
    ```yaml
    args: ["--kv-transfer-config", '{"kv_connector":"NixlConnector","kv_role":"kv_both","kv_load_failure_policy":"fail"}']
    ```
    """

    code = "DG209"
    name = "kv-load-failure-recompute"
    severity = Severity.WARNING

    def check(self, ctx):
        for w in ctx.deployment.workers:
            if w.role in ("aggregated", "prefill"):
                # no prefill instance hands it KV (the decode pulls from the prefill): its loads come from a KV store or
                # offload tier (an srtctl aggregated worker with MooncakeStoreConnector, a prefill's MultiConnector
                # store), where recomputing a block that fails to load is the design
                continue
            s = w.settings.get("kv_load_failure_policy")
            if s is not None and s.known and str(s.value).lower() == "recompute":
                yield ctx.finding(self, s.span, f"{w.name}: kv_load_failure_policy recompute hides failed KV transfers: the decode side silently prefills again",
                                  worker=w, fix=Fix('use "kv_load_failure_policy": "fail" (vLLM\'s newer default) and watch the failures'))
