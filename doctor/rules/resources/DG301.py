from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule


class DG301(Rule):
    """## What it does
    Adds up the GPUs a deployment asks for (replicas × nodes × GPUs per worker, in every format) and reports when
    the sum exceeds the GPUs available, as given by `--gpus N` or `[tool.disagg] gpus`. Without that setting it
    does nothing: the answer must not depend on the machine that runs the linter.

    ## Why is this bad?
    Workers that cannot get their GPUs never start (Kubernetes leaves them Pending; Dynamo v0 only warned and
    oversubscribed). A prefill worker that never starts is the quiet zero-prefill-traffic failure this tool exists
    for.

    ## Example
    ```yaml
    VllmWorker:
      ServiceArgs: {workers: 1, resources: {gpu: 4}}
    PrefillWorker:
      ServiceArgs: {workers: 4, resources: {gpu: 2}}
    ```

    ## Use instead
    ```yaml
    VllmWorker:
      ServiceArgs: {workers: 1, resources: {gpu: 4}}
    PrefillWorker:
      ServiceArgs: {workers: 4, resources: {gpu: 1}}
    ```

    ## Options
    `--gpus N` (or `gpus = N` under `[tool.disagg]`): the GPUs the deployment may use.
    """

    code = "DG301"
    name = "gpus-overcommitted"
    severity = Severity.ERROR

    def check(self, ctx):
        available = ctx.options.gpus
        if available is None:
            return
        parts = []
        first = None
        for w in ctx.deployment.workers:
            gpus, reps = w.gpus.value, w.replicas.value
            if not isinstance(gpus, int) or gpus <= 0 or not isinstance(reps, int) or w.known("engine_part"):
                continue
            parts.append((w.name, reps, w.nodes, gpus))
            first = first or w
        total = sum(r * n * g for _, r, n, g in parts)
        if total > available and first is not None:
            breakdown = " + ".join(f"{name} {r}×{g}" + (f"×{n} nodes" if n > 1 else "") for name, r, n, g in parts)
            yield ctx.finding(self, first.gpus.span or first.span, f"the workers ask for {total} GPUs ({breakdown}) but {available} are available (--gpus)",
                              worker=first, fix=Fix("lower replicas or GPUs per worker, or run on more GPUs"))
