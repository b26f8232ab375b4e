from __future__ import annotations

from disagg.schemas.cmdline import flag_name
from disagg.schemas.config import DISAGG_KEYS
from disagg.schemas.engines import setting_of

from ...finding import Fix, Severity
from ...registry import Rule
from .._helpers import v0_decode


class DG106(Rule):
    """## What it does
    Reports the disaggregation keys (`remote-prefill`, `conditional-disagg`, `max-local-prefill-length`,
    `max-prefill-queue-size`) on a Dynamo v0 section that does not read them: `PrefillWorker`, `Processor`,
    `Frontend`, `Router`, or `Common` when the `VllmWorker` does not pull them in with `common-configs`.

    ## Why is this bad?
    Only the decode worker applies the remote-prefill rule (examples/llm/utils/vllm.py defines the flags for every
    vLLM worker, and only `VllmWorker` acts on them). Elsewhere the keys are accepted and ignored without a
    word, and the decode worker keeps its defaults (remote prefill off).

    ## Example
    ```yaml
    PrefillWorker:
      remote-prefill: true
    ```

    ## Use instead
    ```yaml
    VllmWorker:
      remote-prefill: true
    ```
    """

    code = "DG106"
    name = "disagg-key-on-wrong-section"
    severity = Severity.WARNING

    def check(self, ctx):
        dep = ctx.deployment
        doc = dep.doc
        if dep.format != "dynamo-v0" or doc is None or not isinstance(doc.data, dict):
            return
        dec = v0_decode(dep)
        data = doc.data
        for name, section in data.items():
            # Sections known not to act on the keys; a decode section of another example graph may (multimodal's does).
            if name not in ("PrefillWorker", "VllmPrefillWorker", "Processor", "Frontend", "Router", "Planner", "SimpleLoadBalancer") or not isinstance(section, dict):
                continue
            for key in DISAGG_KEYS:
                for written in [k for k in section if isinstance(k, str) and flag_name(k) == key][:1]:
                    p = doc.marks.key((name, written))
                    yield ctx.finding(self, p, f"{written} on {name} is ignored: only VllmWorker (the decode worker) reads it",
                                      fix=ctx.fix_remove_key((name, written), f"move {written} to VllmWorker", safe=False))
        common = data.get("Common")
        if not isinstance(common, dict):
            return
        pulled = set()
        vw = data.get("VllmWorker")
        if isinstance(vw, dict) and isinstance(vw.get("common-configs"), list):
            pulled = {str(k) for k in vw["common-configs"]}
        for key in DISAGG_KEYS:
            if key in common and key not in pulled and not (dec is not None and setting_of(key) in dec.settings):
                yield ctx.finding(self, doc.marks.key(("Common", key)), f"{key} in Common is ignored: VllmWorker does not list it in common-configs",
                                  fix=Fix(f"add {key} to VllmWorker's common-configs, or set it under VllmWorker"))
