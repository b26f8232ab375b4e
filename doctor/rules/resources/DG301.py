from __future__ import annotations

from ...finding import Fix, Severity
from ...gpus import nvml_gpu_count
from ...registry import Rule


class DG301(Rule):
    """## What it does
    Adds up the GPUs the services ask for (`ServiceArgs.workers` × `resources.gpu`) and reports when the sum
    exceeds the GPUs available: `--gpus N` when given, else the GPUs NVML reports on this machine.

    ## Why is this bad?
    Over-allocated workers wait for GPUs that never free up, or two engines share one GPU and run out of memory;
    Dynamo v0 only printed a warning. A prefill worker that never starts leaves remote prefills waiting.

    ## Example
    ```yaml
    VllmWorker:
      ServiceArgs: {workers: 1, resources: {gpu: 4}}
    PrefillWorker:
      ServiceArgs: {workers: 4, resources: {gpu: 2}}
    # on a machine with 8 GPUs: 12 requested
    ```

    ## Use instead
    ```yaml
    VllmWorker:
      ServiceArgs: {workers: 1, resources: {gpu: 4}}
    PrefillWorker:
      ServiceArgs: {workers: 4, resources: {gpu: 1}}
    ```

    ## Options
    `--gpus N` sets the GPUs available (for CI, where the target machine is not the one running the doctor).
    """

    code = "DG301"
    name = "gpus-overcommitted"
    severity = Severity.ERROR

    def check(self, ctx):
        available = ctx.options.gpus
        source = "--gpus"
        if available is None:
            available = nvml_gpu_count()
            source = "NVML on this machine"
        if available is None:
            return
        parts = []
        first = None
        for name, sec in (ctx.parse.sections.items() if ctx.parse is not None else ()):
            if name == "Common" or not hasattr(sec.model, "service_args"):
                continue
            sargs = sec.model.service_args
            if sargs.resources.gpu:
                parts.append((name, sargs.workers, sargs.resources.gpu))
                first = first or (name, "ServiceArgs")
        total = sum(w * g for _, w, g in parts)
        if total > available:
            breakdown = " + ".join(f"{n} {w}×{g}" for n, w, g in parts)
            yield ctx.finding(
                self, first,
                f"services ask for {total} GPUs ({breakdown}) but {available} are available ({source})",
                fix=Fix("lower workers or resources.gpu, or run on more GPUs"),
            )
