from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule
from .._connectors import is_dynamo_patched
from .._helpers import as_int, block_size, connector_of, or_default


class DG203(Rule):
    """## What it does
    Reports block sizes that cannot exchange KV between a prefill and a decode worker, and a KV router (Dynamo v0
    `Router`/`Processor`, Dynamo 1.x `--kv-cache-block-size`) that hashes prompts with another block size than its
    workers. Where both are written the finding is an error; where one side leaves vLLM's block size unset it is an
    info that assumes vLLM's CUDA default (16), since the platform (HPU, TPU: 128) and the attention backend (MLA: 64)
    may choose another; other engines are compared only where the file writes both.

    ## Why is this bad?
    KV moves block by block. vLLM's NixlConnector accepts a smaller prefill block size only when prefill TP <=
    decode TP; any other difference fails the handshake or points at the wrong tokens (ai-dynamo/dynamo#1210,
    #1233). A router hashing prompts with another block size finds no prefix hits, so KV-aware routing degrades to
    random.

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
    also = {Severity.WARNING: "a KV router that hashes with another block size than its workers",
            Severity.INFO: "a pair where one side leaves the block size unset (its default depends on the platform and attention backend)"}
    on_roles = True

    def check(self, ctx):
        for pair in ctx.pairs:
            d, p = pair.decode, pair.prefill
            (db, dw), (pb, pw) = block_size(d), block_size(p)
            if db is None or pb is None or db == pb:
                continue
            if d.engine != "vllm" and not (dw and pw):
                continue
            dtp, ptp = as_int(or_default(d, "tp", 1)), as_int(or_default(p, "tp", 1))
            upstream = not any(is_dynamo_patched(w, connector_of(w)[0]) for w in (d, p))
            if d.engine == "vllm" and upstream and pb < db and dtp is not None and ptp is not None and ptp <= dtp:
                continue  # vLLM's NixlConnector splits a smaller prefill block when prefill TP <= decode TP (not Dynamo v0's connector)
            at, other = (p, d) if pw else (d, p)
            default = lambda w, written: "" if written else " (the default)"  # noqa: E731
            # An unset block size is vLLM's CUDA default only where nothing else decides it: the platform (HPU and TPU
            # plugins use 128) and the attention backend (MLA kernels force 64) may choose another, and the file does
            # not say which runs: a comparison with an unset side is an info.
            unsure = "" if dw and pw else " (if the unset side gets vLLM's CUDA default of 16: the platform or attention backend may choose another)"
            yield ctx.pair_finding(self, pair, at, at.where("block_size"),
                                   f"{p.name} (prefill) block size {pb}{default(p, pw)} and {d.name} (decode) block size {db}{default(d, dw)} cannot exchange KV"
                                   + (" (a prefill block may be smaller only when prefill TP <= decode TP)" if d.engine == "vllm" else "") + unsure,
                                   other_key="block_size", fix=Fix("use one block size on both workers"),
                                   severity=None if dw and pw else Severity.INFO)
        engines = [w for w in ctx.deployment.workers if w.is_engine and w.role in ("decode", "prefill", "aggregated")]
        for router in ctx.deployment.workers:
            if router.role not in ("router", "frontend"):
                continue
            s = router.settings.get("block_size") or router.flags.get("kv-cache-block-size")
            rb = as_int(s.value) if s is not None else None
            if rb is None:
                continue
            sizes = {block_size(w)[0] for w in engines if w.role == "decode" or not any(e.role == "decode" for e in engines)} - {None}
            if len(sizes) == 1 and rb not in sizes:
                want = next(iter(sizes))
                # which workers count as decode matters only when the engines disagree among themselves
                chosen = tuple(w for w in engines if w.role == "decode") if len({block_size(w)[0] for w in engines} - {None}) > 1 else ()
                yield ctx.finding(self, s.span, f"{router.name} hashes prompts with block size {rb} but its workers use {want}: KV-aware routing will find no prefix hits",
                                  worker=router, fix=Fix(f"set {router.name}'s block size to {want}"), severity=Severity.WARNING, roles=chosen)
