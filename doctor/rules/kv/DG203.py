from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule
from .._facts import VLLM_DEFAULT_BLOCK_SIZE, decode, prefill, value
from .._pairs import as_int, family, pairs


class DG203(Rule):
    """## What it does
    Reports `block-size` that differs between the decode worker, the prefill worker and the KV router
    (`Router`/`Processor`), after `common-configs` resolution. An unset worker block size counts as vLLM's
    default (16).

    ## Why is this bad?
    KV blocks move between workers block by block: with different sizes the handshake is refused or block ids
    point at the wrong tokens (ai-dynamo/dynamo#1210, #1233). A router hashing prompts with another block size
    than the workers finds no prefix hits, so KV-aware routing degrades to random.

    ## Example
    ```yaml
    VllmWorker:
      block-size: 64
    PrefillWorker:
      block-size: 128
    ```

    ## Use instead
    ```yaml
    Common:
      block-size: 64
    VllmWorker:
      common-configs: [block-size]
    PrefillWorker:
      common-configs: [block-size]
    ```
    """

    code = "DG203"
    name = "block-size-mismatch"
    severity = Severity.ERROR

    def check(self, ctx):
        if ctx.deployment is not None:
            for d, p in pairs(ctx):
                default = VLLM_DEFAULT_BLOCK_SIZE if family(d.engine) == "vllm" else 1
                db, pb = as_int(d.get("block_size"), default), as_int(p.get("block_size"), default)
                dtp, ptp = as_int(d.get("tp"), 1), as_int(p.get("tp"), 1)
                if db is None or pb is None or db == pb or dtp is None or ptp is None:
                    continue
                if family(d.engine) == "vllm" and pb < db and ptp <= dtp:
                    continue  # NixlConnector maps a smaller prefill block size when prefill TP <= decode TP
                yield ctx.finding_at(self, p.where("block_size") if "block_size" in p.fields else d.where("block_size"),
                                     f"{p.name} (prefill) block size {pb} and {d.name} (decode) block size {db} cannot exchange KV"
                                     + (" (a prefill block size may be smaller only when prefill TP <= decode TP)" if family(d.engine) == "vllm" else ""),
                                     fix=Fix("use one block size on both instances"))
            return
        dec, pre = decode(ctx), prefill(ctx)
        if dec is None:
            return
        dec_bs = value(dec, "block-size", VLLM_DEFAULT_BLOCK_SIZE)
        if pre is not None:
            pre_bs = value(pre, "block-size", VLLM_DEFAULT_BLOCK_SIZE)
            if pre_bs != dec_bs:
                where = pre.path_of("block-size") if pre.is_set("block-size") else dec.path_of("block-size")
                default = lambda s: "" if s.is_set("block-size") else " (vLLM's default)"  # noqa: E731
                yield ctx.finding(
                    self, where,
                    f"PrefillWorker block-size {pre_bs}{default(pre)} differs from VllmWorker block-size {dec_bs}{default(dec)}: "
                    "KV blocks cannot be exchanged between them",
                    fix=Fix("use one block-size on both workers (e.g. set it in Common and pull it with common-configs)"),
                    at="value" if pre.is_set("block-size") or dec.is_set("block-size") else "key",
                )
        for name in ("Router", "Processor"):
            sec = ctx.section(name)
            bs = value(sec, "block-size")
            if sec is not None and bs is not None and bs != dec_bs:
                yield ctx.finding(
                    self, sec.path_of("block-size"),
                    f"{name} block-size {bs} differs from the workers' {dec_bs}: KV-aware routing will find no prefix hits",
                    fix=Fix(f"set {name} block-size to {dec_bs}"), at="value", severity=Severity.WARNING,
                )
