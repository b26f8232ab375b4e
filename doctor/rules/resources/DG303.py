from __future__ import annotations

from ...finding import Severity
from ...registry import Rule
from .._facts import value


class DG303(Rule):
    """## What it does
    Reports options that Dynamo's workers override at start-up, and says what will really run: chunked prefill and
    prefix caching on a `PrefillWorker` (forced off), `enforce-eager: false` on a `PrefillWorker` (forced on), and
    chunked prefill on a `VllmWorker` with remote prefill (forced off).

    ## Why is this bad?
    The workers rewrite these settings and print one log line. The config then documents a deployment that does not
    exist: the prefill worker does not cache prefixes, runs without CUDA graphs, and so on. Capacity plans made
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
        pre = ctx.section("PrefillWorker")
        if pre is not None:
            if value(pre, "enable-chunked-prefill") is True:
                yield self._report(ctx, pre, "enable-chunked-prefill", "the prefill worker forces chunked prefill off; it runs without it")
            if value(pre, "enable-prefix-caching") is True:
                yield self._report(ctx, pre, "enable-prefix-caching", "the prefill worker forces prefix caching off; repeated prefixes are prefilled again")
            if value(pre, "enforce-eager") is False:
                yield self._report(ctx, pre, "enforce-eager", "the prefill worker forces eager mode on; it runs without CUDA graphs")
        dec = ctx.section("VllmWorker")
        if dec is not None and dec.model.remote_prefill and value(dec, "enable-chunked-prefill") is True:
            yield self._report(ctx, dec, "enable-chunked-prefill", "with remote-prefill the decode worker forces chunked prefill off; it runs without it")

    def _report(self, ctx, sec, key, what):
        return ctx.finding(
            self, sec.path_of(key), f"{sec.name} {key}: {what}",
            fix=ctx.fix_remove_key(sec.path_of(key), f"remove {key}: it does not take effect"),
        )
