from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule
from .._facts import value


class DG302(Rule):
    """## What it does
    Reports a worker whose `tensor-parallel-size` × `pipeline-parallel-size` exceeds its `resources.gpu`, and (as a
    warning) one that asks for more GPUs than its parallelism uses.

    ## Why is this bad?
    An engine sharded over more GPUs than its process was given fails at start-up (or, on a shared host, grabs
    another worker's GPUs). GPUs asked for and not used are reserved for nothing; Dynamo v0 only warned.

    ## Example
    ```yaml
    VllmWorker:
      tensor-parallel-size: 4
      ServiceArgs: {resources: {gpu: 2}}
    ```

    ## Use instead
    ```yaml
    VllmWorker:
      tensor-parallel-size: 4
      ServiceArgs: {resources: {gpu: 4}}
    ```
    """

    code = "DG302"
    name = "parallelism-exceeds-gpus"
    severity = Severity.ERROR

    def check(self, ctx):
        for name in ("VllmWorker", "PrefillWorker"):
            sec = ctx.section(name)
            if sec is None:
                continue
            gpu = sec.model.service_args.resources.gpu
            if gpu is None:
                continue
            tp, pp = value(sec, "tensor-parallel-size", 1), value(sec, "pipeline-parallel-size", 1)
            need = tp * pp
            where = sec.path_of("tensor-parallel-size") if sec.is_set("tensor-parallel-size") else (name, "ServiceArgs", "resources", "gpu")
            if need > gpu:
                yield ctx.finding(
                    self, where,
                    f"{name} shards over {need} GPUs (tensor-parallel-size {tp} × pipeline-parallel-size {pp}) but asks for gpu: {gpu}",
                    fix=Fix(f"set resources.gpu to {need}, or lower the parallelism"), at="value",
                )
            elif 0 < need < gpu:
                yield ctx.finding(
                    self, (name, "ServiceArgs", "resources", "gpu"),
                    f"{name} asks for gpu: {gpu} but its parallelism uses {need}: {gpu - need} GPU(s) per worker sit reserved and idle",
                    fix=Fix(f"set resources.gpu to {need}, or raise tensor-parallel-size"), at="value", severity=Severity.WARNING,
                )
