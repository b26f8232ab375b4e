from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule


class DG407(Rule):
    """## What it does
    Reports a key written twice in a file whose reader keeps the last value: an SGLang server-argument file
    (`--config FILE.yaml`), which SGLang loads with `yaml.safe_load`.

    ## Why is this bad?
    YAML says a key is written once; PyYAML, which SGLang reads its `--config` file with, keeps the last value
    without a word (sgl-project/sglang@03bd2f1 `python/sglang/srt/server_args_config_parser.py` `_parse_yaml_config`).
    When the two values differ, the first one, which is what a reader of the file sees first, never reaches the
    server.

    ## Example
    ```yaml
    disaggregation-transfer-backend: nixl
    mem-fraction-static: 0.8
    disaggregation-transfer-backend: mooncake
    ```

    ## Use instead
    ```yaml
    disaggregation-transfer-backend: nixl
    mem-fraction-static: 0.8
    ```
    """

    code = "DG407"
    name = "key-written-twice"
    severity = Severity.WARNING
    also = {Severity.INFO: "both values are the same"}

    def check(self, ctx):
        for issue in ctx.deployment.issues:
            if issue.kind != "key_twice":
                continue
            key, first, last, line = issue.message, issue.get("first"), issue.get("last"), issue.get("first_line")
            same = first == last
            yield ctx.finding(self, issue.span, f"{key} is written twice (first at line {line}); {issue.get('reader')} keeps the last value"
                              + (f", so {first!r} is never used: {key} is {last!r}" if not same else ", the same value"),
                              severity=Severity.INFO if same else None,
                              fix=Fix(f"write {key} once, with the value the server should run with"))
