from __future__ import annotations

from disagg.schemas import knowledge
from disagg.schemas.engines import setting_of

from ...finding import Severity
from ...registry import Rule
from .._helpers import flag_bool


class DG303(Rule):
    """## What it does
    Reports options that Dynamo v0's workers override at start, and says what will really run: chunked prefill and
    prefix caching on a `PrefillWorker` (forced off), `enforce-eager: false` on a `PrefillWorker` (forced on), and
    chunked prefill on a `VllmWorker` with remote prefill (forced off).

    ## Why is this bad?
    The workers only print a line when they change the user's settings, so the config describes an engine that does
    not exist: the prefill worker does not cache prefixes, runs without CUDA graphs, and so on. Capacity plans made
    from the config are wrong.

    ## Example
    ```yaml
    PrefillWorker:
      enable-prefix-caching: true
      enable-chunked-prefill: true
    ```

    ## Use instead
    ```yaml
    PrefillWorker:
      max-num-batched-tokens: 16384
    ```
    """

    code = "DG303"
    name = "setting-overridden-at-start"
    severity = Severity.WARNING

    def check(self, ctx):
        fact = knowledge.fact("dynamo.v0.prefill_worker_overrides")
        for w in ctx.deployment.workers:
            if w.section not in (("PrefillWorker",), ("VllmWorker",)) or w.target.verdict("dynamo", fact.releases) is not True:
                continue
            if w.section == ("PrefillWorker",):
                if flag_bool(w, "enable_chunked_prefill"):
                    yield self._report(ctx, w, "enable-chunked-prefill", "the prefill worker forces chunked prefill off; it runs without it")
                if flag_bool(w, "enable_prefix_caching"):
                    yield self._report(ctx, w, "enable-prefix-caching", "the prefill worker forces prefix caching off; repeated prefixes are prefilled again")
                own = ctx.deployment.doc.data.get("PrefillWorker") if ctx.deployment.doc is not None else None
                if isinstance(own, dict) and own.get("enforce-eager") is False:
                    yield self._report(ctx, w, "enforce-eager", "the prefill worker forces eager mode on; it runs without CUDA graphs")
            elif flag_bool(w, "remote_prefill") and flag_bool(w, "enable_chunked_prefill"):
                yield self._report(ctx, w, "enable-chunked-prefill", "with remote-prefill the decode worker forces chunked prefill off; it runs without it")

    def _report(self, ctx, w, key, what):
        from ...finding import Fix

        path = (w.section[0], key)
        doc = ctx.deployment.doc
        own = doc is not None and isinstance(doc.data.get(w.section[0]), dict) and key in doc.data[w.section[0]]
        title = f"remove {key}: it does not take effect"
        fix = ctx.fix_remove_key(path, title, safe=False) if own else Fix(title + " (it comes from Common)")
        return ctx.finding(self, doc.marks.key(path) if own else w.where(setting_of(key)), f"{w.section[0]} {key}: {what}", worker=w, fix=fix)
