from __future__ import annotations

from disagg.schemas.config import kv_connector

from ...finding import Fix, Severity
from ...registry import Rule
from .._facts import decode, prefill
from .._pairs import pairs


class DG201(Rule):
    """## What it does
    Reports `kv-transfer-config` set on only one of the decode and prefill workers, or on neither while remote
    prefill is on.

    ## Why is this bad?
    Both engines need the KV connector: the prefill side to expose its blocks, the decode side to read them. With
    the connector on one side only, prefilled blocks expire unread and the decode worker recomputes the prompt
    (or the handshake never happens), so remote prefill costs twice and gains nothing. Dynamo 1.x checks only the
    prefill side.

    ## Example
    ```yaml
    VllmWorker:
      remote-prefill: true
    PrefillWorker:
      kv-transfer-config: '{"kv_connector":"DynamoNixlConnector"}'
    ```

    ## Use instead
    ```yaml
    VllmWorker:
      remote-prefill: true
      kv-transfer-config: '{"kv_connector":"DynamoNixlConnector"}'
    PrefillWorker:
      kv-transfer-config: '{"kv_connector":"DynamoNixlConnector"}'
    ```
    """

    code = "DG201"
    name = "kv-connector-one-side"
    severity = Severity.ERROR

    def check(self, ctx):
        if ctx.deployment is not None:
            yield from self._deployment(ctx)
            return
        dec, pre = decode(ctx), prefill(ctx)
        if dec is None or pre is None:
            return
        has_dec, has_pre = dec.is_set("kv-transfer-config"), pre.is_set("kv-transfer-config")
        if has_dec and not has_pre:
            conn, _ = kv_connector(dec)
            yield ctx.finding(
                self, ("PrefillWorker",),
                "VllmWorker has kv-transfer-config but PrefillWorker has none: prefilled KV cannot reach the decode worker",
                fix=ctx.fix_set_key("PrefillWorker", "kv-transfer-config", _quoted(dec), "copy VllmWorker's kv-transfer-config to PrefillWorker"),
            )
        elif has_pre and not has_dec:
            yield ctx.finding(
                self, ("VllmWorker",),
                "PrefillWorker has kv-transfer-config but VllmWorker has none: prefilled blocks expire unread and the decode worker recomputes them",
                fix=ctx.fix_set_key("VllmWorker", "kv-transfer-config", _quoted(pre), "copy PrefillWorker's kv-transfer-config to VllmWorker"),
            )
        elif not has_dec and not has_pre and dec.model.remote_prefill:
            yield ctx.finding(
                self, dec.path_of("remote-prefill"),
                "remote-prefill is on but neither worker sets kv-transfer-config: the KV cache has no way to move",
                fix=Fix("set kv-transfer-config (e.g. '{\"kv_connector\":\"DynamoNixlConnector\"}') on both workers"),
            )

    def _deployment(self, ctx):
        seen = set()
        for d, p in pairs(ctx):
            has_d, has_p = d.get("kv_connector") is not None, p.get("kv_connector") is not None
            if has_p and not has_d and d.name not in seen:
                seen.add(d.name)
                yield ctx.finding_at(self, d.span, f"{p.name} (prefill) has KV connector {p.get('kv_connector')} but {d.name} (decode) has none: "
                                     "prefilled blocks are never read and the decode worker recomputes every prompt",
                                     fix=Fix("give the decode instance the same --kv-transfer-config"))
            elif has_d and not has_p and p.name not in seen:
                seen.add(p.name)
                yield ctx.finding_at(self, p.span, f"{d.name} (decode) has KV connector {d.get('kv_connector')} but {p.name} (prefill) has none: no KV can reach the decode worker",
                                     fix=Fix("give the prefill instance the same --kv-transfer-config"))

def _quoted(sec) -> str:
    value = sec.resolved["kv-transfer-config"]
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    import json

    return "'" + json.dumps(value) + "'"
