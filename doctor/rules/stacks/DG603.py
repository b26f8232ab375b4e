from __future__ import annotations

from disagg.schemas import knowledge

from ...finding import Edit, Fix, Severity
from ...registry import Rule

_FLAGS = {"is-prefill-worker": "prefill", "is-decode-worker": "decode"}


class DG603(Rule):
    """## What it does
    Reports a `python -m dynamo.*` module that the targeted release does not ship (they arrived in 0.4; an image tag
    that names an older release says so), and `dynamo.vllm` flags that the targeted release does not take: `--is-prefill-worker` and
    `--is-decode-worker` (deprecated in 1.0-1.3 in favour of `--disaggregation-mode`, gone from 1.4), `--connector`
    (rejected at start from 1.0), and `--disaggregation-mode` in releases before 1.0. Each verdict is checked
    against the release table generated from the published wheels; a flag whose fate depends on a release the file
    does not pin is at most a note.

    ## Why is this bad?
    A flag the worker does not know stops it at start ("unrecognized arguments"), and `--connector` makes 1.x raise.
    A deprecated role flag keeps working until the upgrade that removes it, and then the prefill worker is gone.

    ## Example
    ```bash
    python -m dynamo.vllm --model m --is-prefill-worker
    ```

    ## Use instead
    ```bash
    python -m dynamo.vllm --model m --disaggregation-mode prefill
    ```
    """

    code = "DG603"
    name = "dynamo-flag-not-in-release"
    severity = Severity.ERROR
    also = {Severity.INFO: "a flag deprecated in the targeted release"}

    def check(self, ctx):
        absent = []
        for w in ctx.deployment.workers:
            shipped = knowledge.program_releases("dynamo", w.program)
            if shipped is not None and knowledge.verdict(w.target, "dynamo", shipped) is False:
                absent.append(w)
        if absent:
            w = absent[0]
            first = min(knowledge.program_releases("dynamo", w.program), key=knowledge.version_key)
            yield ctx.finding(self, w.span, f"python -m {w.program} does not exist in {w.target.describe('dynamo')} (it arrived in {first}): "
                              f"{', '.join(x.name for x in absent)} fail at start with this image", worker=w, assumed=ctx.assumed(w),
                              fix=Fix(f"use an image of Dynamo {first} or later, or pin --target-version if the image tag is not what runs"))
            return
        for w in ctx.deployment.workers:
            if w.program != "dynamo.vllm":
                continue
            for flag in ("is-prefill-worker", "is-decode-worker", "connector", "disaggregation-mode"):
                s = w.flags.get(flag)
                if s is None:
                    continue
                exists = knowledge.flag_releases("dynamo", "dynamo.vllm", f"--{flag}") or frozenset()
                gone = knowledge.verdict(w.target, "dynamo", exists) is False
                if flag == "connector":
                    rejected = knowledge.pattern("dynamo", "vllm.connector_flag_rejected").releases
                    if gone or knowledge.verdict(w.target, "dynamo", rejected) is True:
                        yield ctx.finding(self, s.span, f"{w.name}: --connector makes dynamo.vllm raise at start in {w.target.describe('dynamo')}; "
                                          "the connector is set with --kv-transfer-config", worker=w, assumed=ctx.assumed(w),
                                          fix=Fix("replace --connector with --kv-transfer-config '{\"kv_connector\":\"NixlConnector\",\"kv_role\":\"kv_both\"}'"))
                    continue
                if gone:
                    yield ctx.finding(self, s.span, f"{w.name}: --{flag} is not a dynamo.vllm flag in {w.target.describe('dynamo')}: the worker exits at start "
                                      "with 'unrecognized arguments'", worker=w, assumed=ctx.assumed(w), fix=self._fix(ctx, w, flag, s))
                    continue
                deprecated = knowledge.deprecated_releases("dynamo", "dynamo.vllm", f"--{flag}")
                if flag in _FLAGS and deprecated and knowledge.verdict(w.target, "dynamo", deprecated) is True:
                    yield ctx.finding(self, s.span, f"{w.name}: --{flag} is deprecated in {w.target.describe('dynamo')} and removed from 1.4; "
                                      f"use --disaggregation-mode {_FLAGS[flag]}", worker=w, assumed=ctx.assumed(w), severity=Severity.INFO,
                                      fix=self._fix(ctx, w, flag, s))

    def _fix(self, ctx, w, flag, s) -> Fix:
        if flag not in _FLAGS:
            return Fix(f"remove --{flag}, or run a release that has it")
        title = f"replace --{flag} with --disaggregation-mode {_FLAGS[flag]} (1.0 and later)"
        span = s.span
        line = ctx.deployment.lines[span.line - 1] if 0 < span.line <= len(ctx.deployment.lines) else ""
        item = line.strip()
        if item.startswith("- ") and item[2:].strip("'\"") == f"--{flag}":
            # a YAML list item: two items, the flag and its value
            indent = line[: line.index("-")]
            return Fix(title, (Edit("replace", span.line, span.column, span.end_line, span.end_column, "--disaggregation-mode"),
                               Edit("insert_after", span.line, text=f"{indent}- {_FLAGS[flag]}")), safe=False)
        return Fix(title, (Edit("replace", span.line, span.column, span.end_line, span.end_column, f"--disaggregation-mode {_FLAGS[flag]}"),), safe=False)
