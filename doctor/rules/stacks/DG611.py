from __future__ import annotations

from disagg.schemas.pairing import ByBranch

from ...finding import Fix, Severity
from ...registry import Rule
from .._ports import bootstrap_port

_DEFAULT_BACKEND = "mooncake"  # ServerArgs.disaggregation_transfer_backend (knowledge: sglang.transfer_backend_default)


class DG611(Rule):
    """## What it does
    Reports SGLang prefill/decode pairs that use different KV transfer backends (`--disaggregation-transfer-backend`,
    default mooncake), and SGLang prefill servers in one network namespace that share a bootstrap port
    (`--disaggregation-bootstrap-port`, default 8998). Dynamo's SGLang worker reserves a free bootstrap port itself
    when none is given (`_reserve_disaggregation_bootstrap_port`, 0.4.1 on), and pods have their own network, so those
    are not reported; the nodes of one multi-node engine are one server.

    ## Why is this bad?
    The prefill server hands KV to the decode server over its transfer backend; mismatched backends never connect
    (`sglang:num_transfer_failed_reqs`). Two prefill servers with one bootstrap port in one network namespace collide,
    so the second never registers.

    ## Example
    ```bash
    python -m sglang.launch_server --model-path m --disaggregation-mode prefill --disaggregation-transfer-backend nixl
    python -m sglang.launch_server --model-path m --disaggregation-mode decode
    ```

    ## Use instead
    ```bash
    python -m sglang.launch_server --model-path m --disaggregation-mode prefill --disaggregation-transfer-backend nixl
    python -m sglang.launch_server --model-path m --disaggregation-mode decode --disaggregation-transfer-backend nixl
    ```
    """

    code = "DG611"
    name = "sglang-transfer-mismatch"
    severity = Severity.ERROR
    on_roles = True

    def check(self, ctx):
        for pair in ctx.pairs:
            d, p = pair.decode, pair.prefill
            if d.engine != "sglang" or p.engine != "sglang":
                continue
            ds, ps = d.settings.get("transfer_backend"), p.settings.get("transfer_backend")
            if (ds is not None and not ds.known) or (ps is not None and not ps.known):
                continue
            db = str(ds.value).lower() if ds is not None else _DEFAULT_BACKEND
            pb = str(ps.value).lower() if ps is not None else _DEFAULT_BACKEND
            if db != pb:
                at = p if ps is not None else d
                yield ctx.pair_finding(self, pair, at, at.where("transfer_backend"), f"{p.name} (prefill) transfers KV with {pb} but {d.name} (decode) with {db}: "
                                       "no transfer can succeed", other_key="transfer_backend", fix=Fix("use the same --disaggregation-transfer-backend on both"))
        seen: dict[tuple, ByBranch] = {}  # only processes that run in one invocation of a script share its network
        for p in ctx.deployment.of_role("prefill"):
            if p.engine != "sglang" or p.host.kind == "pod" or p.known("engine_part") or p.host.network.startswith("unpinned-host:"):
                continue
            port = bootstrap_port(p)  # the one port table (doctor/rules/_ports.py)
            if port is None:
                continue
            key = (p.host.network, port)
            other = next(seen[key].meeting(p, one_invocation=True), None) if key in seen else None
            if other is not None:
                yield ctx.finding(self, p.where("bootstrap_port"), f"{p.name} and {other.name} share bootstrap port {key[1]} in one network namespace: the second cannot register",
                                  worker=p, related=(ctx.related(other, other.where("bootstrap_port"), "the other prefill server"),), roles=(p, other),
                                  fix=Fix("give each prefill server on a host its own --disaggregation-bootstrap-port"))
            else:
                seen.setdefault(key, ByBranch()).add(p)
