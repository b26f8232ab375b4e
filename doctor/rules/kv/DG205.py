from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule


def _local_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or "://" in name


def _base(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1].lower()


class DG205(Rule):
    """## What it does
    Reports a prefill and a decode worker that serve different models.

    ## Why is this bad?
    KV of one model is garbage to another: a transfer either fails the handshake (layers, heads and dtype are
    hashed on both sides) or decodes from the wrong cache. Dynamo's own v0.5.0 SGLang multinode example shipped
    with prefill serving `Qwen/Qwen3-0.6B` and decode serving `meta-llama/Llama-3.3-70B-Instruct` (fixed upstream in
    ai-dynamo/dynamo#2931). A local path and a hub name may be the same model, so only names of the same kind are
    compared, and two local folders only as an info (a copy of the weights per host is common) and not at all when
    their last components agree; a Dynamo v0 Frontend's `served_model_name` only names the model to clients and is not compared
    (ai-dynamo/dynamo#462 was served that way).

    ## Example
    ```yaml
    VllmWorker:
      model: meta-llama/Llama-3.1-8B-Instruct
    PrefillWorker:
      model: meta-llama/Llama-3.1-70B-Instruct
    ```

    ## Use instead
    ```yaml
    Common:
      model: meta-llama/Llama-3.1-8B-Instruct
    VllmWorker:
      common-configs: [model]
    PrefillWorker:
      common-configs: [model]
    ```
    """

    code = "DG205"
    name = "model-mismatch"
    severity = Severity.ERROR
    also = {Severity.INFO: "two local model folders with different names (whether they hold different weights is not in the file)"}
    on_roles = True

    def check(self, ctx):
        for pair in ctx.pairs:
            d, p = pair.decode, pair.prefill
            dm, pm = d.known("model"), p.known("model")
            if dm is None or pm is None or str(dm) == str(pm) or _local_path(str(dm)) != _local_path(str(pm)):
                continue
            severity, unsure = None, ""
            if _local_path(str(dm)):
                # two folders may hold the same weights (a copy per host, another mount point): only differing folder
                # names are said, and only as an info
                if _base(str(dm)) == _base(str(pm)):
                    continue
                severity, unsure = Severity.INFO, " (if those folders hold different weights; the file does not say what they hold)"
            yield ctx.pair_finding(self, pair, p, p.where("model"), f"{p.name} (prefill) serves model {pm!r} but {d.name} (decode) serves {dm!r}: "
                                   f"KV of one model is garbage to the other{unsure}", other_key="model", severity=severity,
                                   fix=Fix("serve the same model on both workers"))
