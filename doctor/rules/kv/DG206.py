from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule
from .._helpers import or_default


def _norm(v) -> str | None:
    return None if v is None else str(v).strip().lower()


class DG206(Rule):
    """## What it does
    Reports a prefill/decode pair whose `dtype` differ where both are written (an unset or `auto` dtype follows the
    model, so it is compared with nothing), and whose KV-cache dtype differs (unset is `auto`, the model dtype).

    ## Why is this bad?
    The decode worker reads the transferred blocks in its own format. fp8 KV read as bf16 (or float16) produces
    corrupt output or a crash at the first transfer (sgl-project/sglang PR#19398); NIXL's handshake refuses the
    pair at best (vLLM compute_nixl_compatibility_hash).

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
    on_roles = True

    def check(self, ctx):
        for pair in ctx.pairs:
            d, p = pair.decode, pair.prefill
            dv, pv = _norm(d.known("dtype")), _norm(p.known("dtype"))
            if dv and pv and "auto" not in (dv, pv) and dv != pv:
                yield ctx.pair_finding(self, pair, p, p.where("dtype"), f"dtype differs: {d.name} (decode) {dv}, {p.name} (prefill) {pv}; "
                                       "the KV cache would be read in the wrong format", other_key="dtype", fix=Fix("use the same dtype on both workers"))
            if "kv_cache_dtype" not in d.settings and "kv_cache_dtype" not in p.settings:
                continue
            if not all(w.settings["kv_cache_dtype"].known for w in (d, p) if "kv_cache_dtype" in w.settings):
                continue
            dk, pk = _norm(or_default(d, "kv_cache_dtype", "auto")), _norm(or_default(p, "kv_cache_dtype", "auto"))
            if dk is not None and pk is not None and dk != pk:
                at = p if "kv_cache_dtype" in p.settings else d
                yield ctx.pair_finding(self, pair, at, at.where("kv_cache_dtype"),
                                       f"KV-cache dtype differs: {d.name} (decode) {dk}, {p.name} (prefill) {pk} (auto is the model dtype); "
                                       "the KV cache would be read in the wrong format", other_key="kv_cache_dtype",
                                       fix=Fix("use the same KV-cache dtype on both workers"))
