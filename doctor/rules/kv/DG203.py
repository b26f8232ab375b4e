from __future__ import annotations

from disagg.schemas import knowledge

from ...finding import Fix, Severity
from ...registry import Rule
from .._connectors import is_dynamo_patched, is_nixl, vllm_releases
from .._helpers import as_int, block_size, connector_of, default_nixl_where_prefill_starts, or_default


class DG203(Rule):
    """## What it does
    Reports block sizes that cannot exchange KV between a prefill and a decode worker, and a KV router (Dynamo v0
    `Router`/`Processor`, Dynamo 1.x `--kv-cache-block-size`) that hashes prompts with another block size than its
    workers. The standalone `python -m dynamo.router` (0.6.0 on: `--block-size`, from 1.0.0 `--router-block-size`)
    is such a router. Where both are written the finding is an error; where one side leaves vLLM's block size unset it is an
    info that assumes vLLM's CUDA default (16), since the platform (HPU, TPU: 128) and the attention backend (MLA: 64)
    may choose another; other engines are compared only where the file writes both.

    ## Why is this bad?
    KV moves block by block. vLLM's NixlConnector asserts equal block sizes at the handshake through vLLM 0.11.0;
    from 0.11.1 it accepts a prefill block size that divides the decode's when prefill TP <= decode TP (vllm#26759);
    any other difference fails the handshake or points at the wrong tokens (ai-dynamo/dynamo#1210, #1233). Where
    the vLLM release is not known, a smaller prefill block is an info. A router hashing prompts with another block size finds no prefix hits, so KV-aware routing degrades to
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
            hetero, sure = "", True
            if d.engine == "vllm" and upstream and 0 < pb < db and dtp is not None and ptp is not None and ptp <= dtp:
                accepted, hetero = self._smaller_prefill_block_accepted(d, p, db, pb)
                if accepted is True:
                    continue  # vLLM's NixlConnector splits a smaller prefill block when prefill TP <= decode TP (not Dynamo v0's connector)
                sure = accepted is False
            at, other = (p, d) if pw else (d, p)
            default = lambda w, written: "" if written else " (the default)"  # noqa: E731
            # An unset block size is vLLM's CUDA default only where nothing else decides it: the platform (HPU and TPU
            # plugins use 128) and the attention backend (MLA kernels force 64) may choose another, and the file does
            # not say which runs: a comparison with an unset side is an info.
            unsure = "" if dw and pw else " (if the unset side gets vLLM's CUDA default of 16: the platform or attention backend may choose another)"
            why = hetero or (" (a prefill block may be smaller only when prefill TP <= decode TP)" if d.engine == "vllm" else "")
            yield ctx.pair_finding(self, pair, at, at.where("block_size"),
                                   f"{p.name} (prefill) block size {pb}{default(p, pw)} and {d.name} (decode) block size {db}{default(d, dw)} cannot exchange KV"
                                   + why + unsure,
                                   other_key="block_size", fix=Fix("use one block size on both workers"),
                                   severity=None if dw and pw and sure else Severity.INFO)
        engines = [w for w in ctx.deployment.workers if w.is_engine and w.role in ("decode", "prefill", "aggregated")]
        for router in ctx.deployment.workers:
            if router.role not in ("router", "frontend"):
                continue
            s = _router_block_size(router)
            rb = as_int(s.value) if s is not None else None
            if rb is None:
                continue
            if router.program == "dynamo.router":
                # the standalone router serves whichever workers its --endpoint names (prefill ones, in Dynamo's
                # examples): only where every engine of the file uses one block size is its mismatch certain
                sizes = {block_size(w)[0] for w in engines}
                sizes = set() if None in sizes else sizes
            else:
                sizes = {block_size(w)[0] for w in engines if w.role == "decode" or not any(e.role == "decode" for e in engines)} - {None}
            if len(sizes) == 1 and rb not in sizes:
                want = next(iter(sizes))
                # which workers count as decode matters only when the engines disagree among themselves
                chosen = tuple(w for w in engines if w.role == "decode") if len({block_size(w)[0] for w in engines} - {None}) > 1 else ()
                yield ctx.finding(self, s.span, f"{router.name} hashes prompts with block size {rb} but its workers use {want}: KV-aware routing will find no prefix hits",
                                  worker=router, fix=Fix(f"set {router.name}'s block size to {want}"), severity=Severity.WARNING, roles=chosen)

    @staticmethod
    def _smaller_prefill_block_accepted(d, p, db: int, pb: int) -> tuple[bool | None, str]:
        """Whether vLLM takes a prefill block smaller than the decode's (prefill TP <= decode TP): True where it does in
        every release the pair may run, False where it does in none, None where that depends on the release; and the
        words that say why. Only NixlConnector's handshake is known to refuse it before 0.11.1
        (vllm.nixl_hetero_block_size): other connectors keep the earlier answer (accepted)."""
        nixl = all(is_nixl(w, connector_of(w)[0] or None) is True for w in (d, p)) or default_nixl_where_prefill_starts(d, p) is not None
        if not nixl:
            return True, ""
        fact = knowledge.fact("vllm.nixl_hetero_block_size")
        cite = fact.source.split(";")[0]
        if db % pb:
            return False, f" (vLLM's NIXL handshake needs equal block sizes, or from 0.11.1 a decode block size that is a multiple of the prefill's; {cite})"
        releases = [vllm_releases(w)[0] for w in (d, p)]
        if any(r is None for r in releases):
            return None, f" in vLLM before 0.11.1, whose NIXL handshake asserts equal block sizes (whether this file's vLLM is older is not known; {cite})"
        cands = frozenset().union(*releases)
        inside = cands & fact.releases
        if inside == cands:
            return True, ""
        if not inside:
            return False, f" (the NIXL handshake of {vllm_releases(d)[1]} asserts equal block sizes; a smaller prefill block is accepted from vLLM 0.11.1, {cite})"
        return None, (f" in vLLM before 0.11.1, whose NIXL handshake asserts equal block sizes (the candidates, {vllm_releases(d)[1]}, include releases "
                      f"before and after it; {cite})")


def _router_block_size(router):
    """The block size a KV router hashes prompts with, where the file writes it. Dynamo's frontend:
    `--kv-cache-block-size`. Dynamo's standalone router (`python -m dynamo.router`, from 0.6.0): `--block-size`
    (int, default 128) through 0.9.x, `--router-block-size` (env DYN_ROUTER_BLOCK_SIZE, default 128, `--block-size`
    still accepted as its alias) from 1.0.0; it hands the value to KvRouter, which splits each prompt into blocks of
    that many tokens before hashing (lib/llm/src/kv_router.rs compute_block_hash_for_seq(tokens, self.block_size);
    indexer.rs chunks_exact(kv_block_size)), so blocks of another size never match the workers' KV events. Source:
    ai-dynamo/dynamo components/src/dynamo/router/__main__.py at 9bb1af337 (0.6.1: --block-size), args.py at
    db88c9530 (1.0.0) and main 2a6da14c8 (1.5.0: --router-block-size, obsolete_flag --block-size, read through
    components/src/dynamo/common/configuration/utils.py add_argument, which accepts the obsolete flag as an alias)."""
    s = router.settings.get("block_size") or router.flags.get("kv-cache-block-size")
    if router.program == "dynamo.router":
        s = router.flags.get("router-block-size") or s or router.env.get("DYN_ROUTER_BLOCK_SIZE")
    return s
