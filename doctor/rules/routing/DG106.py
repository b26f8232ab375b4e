from __future__ import annotations

from disagg.schemas.config import DISAGG_KEYS

from ...finding import Fix, Severity
from ...registry import Rule

_WRONG_SECTIONS = ("PrefillWorker", "Processor", "Frontend", "Router", "Planner")


class DG106(Rule):
    """## What it does
    Reports the disaggregation keys (`remote-prefill`, `conditional-disagg`, `max-local-prefill-length`,
    `max-prefill-queue-size`) on a section that does not read them: `PrefillWorker`, `Processor`, `Frontend`,
    `Router`, `Planner`, or `Common` when the `VllmWorker` does not pull them in with `common-configs`.

    ## Why is this bad?
    Only the decode worker (`VllmWorker`) decides where prefill runs. Anywhere else the key is ignored without a
    word, and the decode worker keeps its defaults (remote prefill off).

    ## Example
    ```yaml
    VllmWorker:
      model: m
    PrefillWorker:
      remote-prefill: true
    ```

    ## Use instead
    ```yaml
    VllmWorker:
      model: m
      remote-prefill: true
    PrefillWorker: {}
    ```
    """

    code = "DG106"
    name = "disagg-key-on-wrong-section"
    severity = Severity.WARNING

    def check(self, ctx):
        for name in _WRONG_SECTIONS:
            sec = ctx.section(name)
            if sec is None:
                continue
            for key in DISAGG_KEYS:
                if key in sec.own:
                    yield ctx.finding(
                        self, (name, key),
                        f"{key} on {name} is ignored: only VllmWorker (the decode worker) reads it",
                        fix=ctx.fix_remove_key((name, key), f"move {key} to VllmWorker"),
                    )
        common = ctx.section("Common")
        dec = ctx.section("VllmWorker")
        if common is None:
            return
        for key in DISAGG_KEYS:
            if key in common.own and (dec is None or dec.origin.get(key) != ("Common", key)):
                if dec is not None and key in dec.own:
                    continue  # the decode worker sets its own value; Common's is merely unused
                yield ctx.finding(
                    self, ("Common", key),
                    f"{key} in Common is ignored: VllmWorker does not list it in common-configs",
                    fix=Fix(f"add {key} to VllmWorker's common-configs, or set it under VllmWorker"),
                )
