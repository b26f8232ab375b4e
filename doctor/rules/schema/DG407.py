from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule


class DG407(Rule):
    """## What it does
    Reports a key written twice in one mapping of a YAML file: an SGLang server-argument file (`--config FILE.yaml`),
    a Kubernetes manifest, a Dynamo v0 config, chart values or compose. The file is read as its loader reads it, with
    the last value, so that the rest of it is still checked.

    ## Why is this bad?
    YAML says a key is written once in a mapping (YAML 1.2.2 section 3.2.1.1), and loaders differ on a second one.
    PyYAML, which SGLang reads its `--config` file with and `dynamo serve` its config, keeps the last value without a
    word (sgl-project/sglang@03bd2f1 `python/sglang/srt/server_args_config_parser.py` `_parse_yaml_config`;
    ai-dynamo/dynamo v0.1.1 `deploy/dynamo/sdk/src/dynamo/sdk/cli/serve.py`). `kubectl apply -f` keeps the last value
    too (kubernetes/kubernetes#125885, #89303), while kustomize and Flux refuse the whole file ("mapping key ...
    already defined", rook/rook#16636). When the two values differ, the first one, which is what a reader of the file
    sees first, never reaches the server; behind kustomize or Flux nothing in the file is applied.

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
            refused = issue.get("refused_by")
            yield ctx.finding(self, issue.span, f"{key} is written twice (first at line {line}); {issue.get('reader')} keeps the last value"
                              + (f", so {_short(first)!r} is never used: {key} is {_short(last)!r}" if not same else ", the same value")
                              + (f"; {refused} refuse the file" if refused else "") + f" [{issue.get('source')}]",
                              severity=Severity.INFO if same else None,
                              fix=Fix(f"write {key} once, with the value the server should run with"))


def _short(value: str, limit: int = 60) -> str:
    """A value as the message quotes it: a mapping or list written twice is shown by its start."""
    one = " ".join(str(value).split())
    return one if len(one) <= limit else one[: limit - 3] + "..."
