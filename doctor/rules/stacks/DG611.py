from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule


class DG611(Rule):
    """## What it does
    Reports SGLang prefill and decode servers (`--disaggregation-mode prefill|decode`) that use different
    transfer backends (`--disaggregation-transfer-backend`, default mooncake), and prefill servers on one host
    sharing a bootstrap port (`--disaggregation-bootstrap-port`, default 8998).

    ## Why is this bad?
    A mooncake prefill server and a NIXL decode server cannot exchange KV: every request fails its transfer
    (`sglang:num_transfer_failed_reqs`). Two prefill servers on one host with the same bootstrap port collide, so
    the second never registers.

    ## Example
    ```sh
    python -m sglang.launch_server --model-path m --disaggregation-mode prefill --disaggregation-transfer-backend nixl
    python -m sglang.launch_server --model-path m --disaggregation-mode decode
    ```

    ## Use instead
    ```sh
    python -m sglang.launch_server --model-path m --disaggregation-mode prefill --disaggregation-transfer-backend nixl
    python -m sglang.launch_server --model-path m --disaggregation-mode decode --disaggregation-transfer-backend nixl
    ```
    """

    code = "DG611"
    name = "sglang-transfer-mismatch"
    severity = Severity.ERROR

    def check(self, ctx):
        dep = ctx.deployment
        if dep is None:
            return
        sg = [w for w in dep.workers if w.engine in ("sglang", "dynamo.sglang") and w.role in ("prefill", "decode")]
        decode = [w for w in sg if w.role == "decode"]
        prefill = [w for w in sg if w.role == "prefill"]
        for p in prefill:
            for d in decode[:1]:
                pb, db = str(p.get("transfer_backend", "mooncake")).lower(), str(d.get("transfer_backend", "mooncake")).lower()
                if pb != db:
                    yield ctx.finding_at(self, p.where("transfer_backend") if "transfer_backend" in p.fields else d.where("transfer_backend"),
                                         f"{p.name} (prefill) transfers KV with {pb} but {d.name} (decode) with {db}: no transfer can succeed",
                                         fix=Fix("use the same --disaggregation-transfer-backend on both"))
        seen: dict[tuple, object] = {}
        for p in prefill:
            key = (p.host, str(p.get("bootstrap_port", "8998")))
            if p.host.startswith(("pod:", "service:")):
                continue
            if key in seen:
                yield ctx.finding_at(self, p.where("bootstrap_port"), f"{p.name} and {seen[key].name} share bootstrap port {key[1]} on one host: the second cannot register",
                                     fix=Fix("give each prefill server on a host its own --disaggregation-bootstrap-port"))
            else:
                seen[key] = p
