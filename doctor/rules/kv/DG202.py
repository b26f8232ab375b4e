from __future__ import annotations

from disagg.schemas.config import kv_connector

from ...finding import Fix, Severity
from ...registry import Rule
from .._pairs import pairs


class DG202(Rule):
    """## What it does
    Reports a `kv-transfer-config` that is not valid JSON or names no `kv_connector`, and decode and prefill
    workers that name different connectors.

    ## Why is this bad?
    The engine parses the value at start-up (a crash loop), and two different connectors cannot talk to each
    other: every transfer fails and, with vLLM's old `recompute` policy, the decode worker silently redoes the
    prefill.

    ## Example
    ```yaml
    VllmWorker:
      kv-transfer-config: '{"kv_connector":"DynamoNixlConnector"}'
    PrefillWorker:
      kv-transfer-config: '{"kv_connector":"PyNcclConnector"}'
    ```

    ## Use instead
    ```yaml
    VllmWorker:
      kv-transfer-config: '{"kv_connector":"DynamoNixlConnector"}'
    PrefillWorker:
      kv-transfer-config: '{"kv_connector":"DynamoNixlConnector"}'
    ```
    """

    code = "DG202"
    name = "kv-connector-mismatch"
    severity = Severity.ERROR

    def check(self, ctx):
        if ctx.deployment is not None:
            for w in ctx.deployment.workers:
                err = w.extra.get("kv_config_error")
                if err:
                    yield ctx.finding_at(self, err[1], f"{w.name}: --kv-transfer-config {err[0]}", fix=Fix("write it as JSON, e.g. '{\"kv_connector\":\"NixlConnector\",\"kv_role\":\"kv_both\"}'"))
            for d, p in pairs(ctx):
                dc, pc = d.get("kv_connector"), p.get("kv_connector")
                if dc and pc and str(dc) != str(pc):
                    yield ctx.finding_at(self, p.where("kv_connector"), f"{p.name} (prefill) uses KV connector {pc} but {d.name} (decode) uses {dc}: the two sides cannot exchange KV blocks",
                                         fix=Fix(f"use the same kv_connector ({dc}) on both instances"))
            return
        seen = set()
        connectors = {}
        for name in ("Common", "VllmWorker", "PrefillWorker"):
            sec = ctx.section(name)
            if sec is None or not sec.is_set("kv-transfer-config"):
                continue
            conn, err = kv_connector(sec)
            where = sec.path_of("kv-transfer-config")
            if err and where not in seen:
                seen.add(where)
                yield ctx.finding(self, where, f"{name}: {err}", fix=Fix('write it as JSON, e.g. \'{"kv_connector":"DynamoNixlConnector"}\''), at="value")
            if conn and name != "Common":
                connectors[name] = (conn, where)
        if len(connectors) == 2 and connectors["VllmWorker"][0] != connectors["PrefillWorker"][0]:
            (dconn, _), (pconn, pwhere) = connectors["VllmWorker"], connectors["PrefillWorker"]
            yield ctx.finding(
                self, pwhere,
                f"PrefillWorker uses KV connector {pconn} but VllmWorker uses {dconn}: the two sides cannot exchange KV blocks",
                fix=Fix(f"use the same kv_connector ({dconn}) on both workers"), at="value",
            )
