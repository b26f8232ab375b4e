from __future__ import annotations

from disagg.schemas import knowledge

from ...finding import Fix, Severity
from ...registry import Rule

# vLLM flags whose default may be on; `false` in a Dynamo v0 config produces no argument at all.
_DEFAULT_ON = {"enable-prefix-caching": "no-enable-prefix-caching", "enable-chunked-prefill": "no-enable-chunked-prefill"}


class DG404(Rule):
    """## What it does
    Notes `enable-prefix-caching: false` and `enable-chunked-prefill: false` in a Dynamo v0 config where Dynamo drops
    the key instead of passing the negative flag (every release for chunked prefill; before 0.3.2 for prefix
    caching, which 0.3.2 turns into `--no-enable-prefix-caching`). Other `false` values equal the default and are
    not reported.

    ## Why is this bad?
    `false` only ever means "the engine's default". Whether that default is on depends on the vLLM release the
    Dynamo release ran (vLLM V1 turns prefix caching on), so the config may say the opposite of what runs.

    ## Example
    ```yaml
    VllmWorker:
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
        negated = knowledge.fact("dynamo.v0.false_prefix_caching_negated").releases
        for issue in ctx.deployment.issues:
            key = issue.get("key")
            if issue.kind != "false_dropped" or key not in _DEFAULT_ON:
                continue
            workers = [w for w in ctx.deployment.workers if w.section == (issue.get("section"),)]
            target = workers[0].target if workers else None
            if key == "enable-prefix-caching" and target is not None and target.verdict("dynamo", negated) is True:
                continue
            yield ctx.finding(self, issue.span, f"{key}: false is dropped (no argument is passed), so the engine's default applies, which may be on",
                              fix=Fix(f"use `{_DEFAULT_ON[key]}: true` to turn it off"), assumed=target.describe("dynamo") if target else "")
