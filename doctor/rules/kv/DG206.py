from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule
from .._facts import decode, prefill, value
from .._pairs import known, norm, pairs


class DG206(Rule):
    """## What it does
    Reports `dtype` or `kv-cache-dtype` that differ between the decode and the prefill worker (unset counts as
    `auto`).

    ## Why is this bad?
    The KV cache is copied byte for byte. A prefill worker writing bf16 blocks for a decode worker that reads fp8
    (or float16) produces corrupt output or a crash at the first transfer (sgl-project/sglang PR#19398); NIXL's
    handshake refuses the pair at best.

    ## Example
    ```yaml
    VllmWorker:
      kv-cache-dtype: fp8
    PrefillWorker:
      kv-cache-dtype: auto
    ```

    ## Use instead
    ```yaml
    VllmWorker:
      kv-cache-dtype: fp8
    PrefillWorker:
      kv-cache-dtype: fp8
    ```
    """

    code = "DG206"
    name = "dtype-mismatch"
    severity = Severity.ERROR

    def check(self, ctx):
        if ctx.deployment is not None:
            for d, p in pairs(ctx):
                for key, label in (("dtype", "dtype"), ("kv_cache_dtype", "kv-cache-dtype")):
                    dv, pv = norm(d.get(key), "auto"), norm(p.get(key), "auto")
                    if dv != pv and known(dv) and known(pv):
                        yield ctx.finding_at(self, p.where(key) if key in p.fields else d.where(key),
                                             f"{label} differs: {d.name} (decode) {dv}, {p.name} (prefill) {pv}; the KV cache would be read in the wrong format",
                                             fix=Fix(f"use the same {label} on both instances"))
            return
        dec, pre = decode(ctx), prefill(ctx)
        if dec is None or pre is None:
            return
        for key in ("dtype", "kv-cache-dtype"):
            dv, pv = value(dec, key, "auto"), value(pre, key, "auto")
            if str(dv).lower() != str(pv).lower():
                where = pre.path_of(key) if pre.is_set(key) else dec.path_of(key)
                yield ctx.finding(
                    self, where,
                    f"{key} differs: VllmWorker {dv}, PrefillWorker {pv}; the KV cache would be read in the wrong format",
                    fix=Fix(f"use the same {key} on both workers"), at="value",
                )
