from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule

# vLLM V1 turns these on by default: `false` in a Dynamo config is dropped, so they stay ON.
_DEFAULT_ON = {"enable-prefix-caching": "no-enable-prefix-caching", "enable-chunked-prefill": "no-enable-chunked-prefill"}
_SECTIONS = ("Common", "VllmWorker", "PrefillWorker", "Processor", "Router")


class DG404(Rule):
    """## What it does
    Notes keys set to `false`. Dynamo turns `true` into a bare `--flag` and drops `false` entirely, so `false`
    only ever means "the engine's default". For flags whose default is on (vLLM V1's `enable-prefix-caching` and
    `enable-chunked-prefill`) this is a warning: the feature stays on.

    ## Why is this bad?
    `key: false` reads as "turn this off" but passes nothing to the engine. Usually harmless (the default is off
    anyway); where the default is on, the config says the opposite of what runs.

    ## Example
    ```yaml
    VllmWorker:
      enforce-eager: false
      enable-prefix-caching: false
    ```

    ## Use instead
    ```yaml
    VllmWorker:
      no-enable-prefix-caching: true
    ```
    """

    code = "DG404"
    name = "false-flag-dropped"
    severity = Severity.INFO

    def check(self, ctx):
        for name in _SECTIONS:
            sec = ctx.section(name)
            if sec is None:
                continue
            for key, val in sec.own.items():
                if val is not False:
                    continue
                if key in _DEFAULT_ON:
                    yield ctx.finding(
                        self, (name, key),
                        f"{key}: false is dropped (no flag is passed) and vLLM V1 enables it by default, so it stays ON",
                        fix=Fix(f"use `{_DEFAULT_ON[key]}: true` to turn it off"), severity=Severity.WARNING,
                    )
                else:
                    yield ctx.finding(
                        self, (name, key),
                        f"{key}: false is dropped (no flag is passed); the engine default applies, which is off",
                        fix=ctx.fix_remove_key((name, key), f"remove {key}: false (it has no effect)"),
                    )
