from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule
from .._helpers import connector_of

# LMCache's own P/D transfer runs one way: the engine whose LMCache role is `sender` pushes KV, the one whose role is
# `receiver` takes it. LMCache reads the role from LMCACHE_NIXL_ROLE (nixl_role, LMCache 0.3.0 era: NixlPipe is "an
# one-directional pipe to send the data from the sender to the receiver"; the sender sends its agent metadata on the
# side channel and blocks until a receiver answers: LMCache/LMCache lmcache/v1/storage_backend/connector/
# nixl_connector_v2.py at 0e65d2f, nixl_utils.py NixlRole SENDER/RECEIVER) or LMCACHE_PD_ROLE (pd_role, with
# nixl_role an alias of it: lmcache/v1/config.py _CONFIG_ALIASES at 000620e; the PD backend's sender asks the
# receiver to allocate and writes into it, the receiver pre-allocates and only reads: pd_backend.py PDConfig; config.py
# validate: "PDBackend is now one way from producer to receiver only"). The switch that turns it on is
# LMCACHE_ENABLE_NIXL (enable_nixl, the 0.3.0 era; later releases no longer read it, so there the transfer is off and
# no KV moves either) or LMCACHE_ENABLE_PD (enable_pd; enable_xpyd an alias).
# Environment variables are LMCACHE_ + the key in capitals, read only when no LMCACHE_CONFIG_FILE is given
# (docs/source/api_reference/configurations.rst: "The environment variable configurations will be ignored if the
# configuration file is present"). A role other than sender/receiver (newer releases accept `both` with
# pd_bidirectional) is not judged. A switch is on when its text, stripped of quotes, is true or 1 in any case
# (lmcache/v1/config_base.py _to_bool and _parse_quoted_string at 082c501).
_ROLE_ENV = ("LMCACHE_PD_ROLE", "LMCACHE_NIXL_ROLE")
_ON_ENV = ("LMCACHE_ENABLE_PD", "LMCACHE_ENABLE_NIXL", "LMCACHE_ENABLE_XPYD")
_TRUE = ("true", "1")


def lmcache_role(w):
    """(role, its Setting) of a worker's LMCache P/D transfer as its environment sets it; None when LMCache's P/D
    transfer is not on there, its role is not written, or a config file or a value set at run time decides it."""
    names, _ = connector_of(w)
    if not names or not any(n.startswith("LMCacheConnector") for n in names):
        return None
    if "LMCACHE_CONFIG_FILE" in w.env:
        return None
    on = [w.env[k] for k in _ON_ENV if k in w.env]
    if not on or not all(s.known for s in on) or not any(str(s.value).strip().strip("'\"").lower() in _TRUE for s in on):
        return None
    role = next((w.env[k] for k in _ROLE_ENV if k in w.env), None)
    if role is None or not role.known or str(role.value) not in ("sender", "receiver"):
        return None
    return str(role.value), role


class DG631(Rule):
    """## What it does
    Reports a prefill and a decode engine whose LMCache P/D transfer (LMCACHE_ENABLE_NIXL / LMCACHE_ENABLE_PD on,
    LMCACHE_NIXL_ROLE / LMCACHE_PD_ROLE, directly or through a chart that sets them, such as production-stack's
    `lmcacheConfig.nixlRole`) cannot move KV from prefill to decode: both `sender`, both `receiver`, or the prefill
    engine `receiver` and the decode engine `sender`.

    ## Why is this bad?
    LMCache's P/D transfer is one-way: the sender pushes KV into buffers the receiver has allocated, and the receiver
    only reads them. Two senders have no receiver (in the NIXL pipe of LMCache 0.3 the sender's side-channel
    handshake waits for one); two receivers wait for KV nobody sends, so the decode engine computes every prompt
    again; swapped roles send the decode engine's KV to the prefill engine. vLLM's `kv_role` does not change this:
    LMCache decides from its own role.

    ## Example
    ```bash
    LMCACHE_ENABLE_NIXL=True LMCACHE_NIXL_ROLE=sender vllm serve m --port 8100 \\
      --kv-transfer-config '{"kv_connector":"LMCacheConnectorV1","kv_role":"kv_producer"}'
    LMCACHE_ENABLE_NIXL=True LMCACHE_NIXL_ROLE=sender vllm serve m --port 8200 \\
      --kv-transfer-config '{"kv_connector":"LMCacheConnectorV1","kv_role":"kv_consumer"}'
    ```

    ## Use instead
    ```bash
    LMCACHE_ENABLE_NIXL=True LMCACHE_NIXL_ROLE=sender vllm serve m --port 8100 ...
    LMCACHE_ENABLE_NIXL=True LMCACHE_NIXL_ROLE=receiver vllm serve m --port 8200 ...
    ```
    """

    code = "DG631"
    name = "lmcache-pd-role-mismatch"
    severity = Severity.ERROR
    on_roles = True

    def check(self, ctx):
        for pair in ctx.pairs:
            d, p = pair.decode, pair.prefill
            dr, pr = lmcache_role(d), lmcache_role(p)
            if dr is None or pr is None or (pr[0], dr[0]) == ("sender", "receiver"):
                continue
            if pr[0] == dr[0]:
                what = ("both are LMCache senders: LMCache moves KV from a sender to a receiver only, and neither receives" if pr[0] == "sender"
                        else "both are LMCache receivers: nobody sends KV, so the decode engine computes every prompt again")
            else:
                what = "the prefill engine is LMCache's receiver and the decode engine its sender: KV would flow from decode to prefill"
            at, s = (p, pr[1]) if pr[0] != "sender" else (d, dr[1])
            other, os_ = (d, dr[1]) if at is p else (p, pr[1])
            message = f"{p.name} (prefill) has LMCache role {pr[0]} and {d.name} (decode) {dr[0]}: {what}"
            severity = None
            if pair.guess:
                severity, message = Severity.INFO, message + f" (an info only: this pair is a guess: {pair.guess})"
            yield ctx.finding(self, s.span, message, worker=at, severity=severity,
                              related=(ctx.related(other, os_.span, f"{other.name} ({other.role}), the other end"),),
                              roles=(d, p), fix=Fix("make the prefill engine LMCache's sender and the decode engine its receiver"))
