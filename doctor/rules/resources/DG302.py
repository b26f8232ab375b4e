from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule
from .._helpers import as_int


def _unknown_flags(w) -> list[str]:
    """Flags of a vLLM/SGLang command that no release we know defines. With one of them the engine either refuses to
    start or is a fork whose parallelism we cannot read (held-out corpus: `--intra-node-data-parallel-size 8`, a
    router flag written where `--data-parallel-size 8` was, gave three false "7 GPUs idle"; bench/corpus/judgement.yaml)."""
    from disagg.schemas import knowledge

    if w.engine not in ("vllm", "sglang") or w.program not in ("vllm", "sglang"):
        return []
    out = []
    for flag in w.flags:
        releases = knowledge.flag_releases(w.engine, w.program, f"--{flag}")
        if releases is None:
            return []  # no table for this program: nothing is known, nothing is unknown
        if not releases:
            out.append(flag)
    return out


def _parallelism_elsewhere(w) -> bool:
    """The worker reads an engine config file (TensorRT-LLM `--extra-engine-args` / `--extra-llm-api-options`, vLLM
    `--config`) and no parallelism was read from the file or command: `tensor_parallel_size` there is unknown, and a
    default of 1 would be a guess (TensorRT-LLM DGDs keep the parallelism in that file; corpus 2 had 6 false
    "7 GPUs idle" warnings on it)."""
    return "extra_engine_args" in w.settings and not any(k in w.settings for k in ("tp", "pp", "dp"))


class DG302(Rule):
    """## What it does
    Reports an engine whose `tensor-parallel-size` × `pipeline-parallel-size` exceeds the GPUs it is given (GPUs per
    node × nodes, in every format), and (as a warning) one that is given more GPUs than its parallelism uses when it
    runs no data parallelism.

    ## Why is this bad?
    An engine sharded over more GPUs than it has fails at start (or, under Dynamo v0, lands on another worker's
    GPUs). GPUs asked for and not used are reserved for nothing; Dynamo v0 only warned.

    ## Example
    ```yaml
    PrefillWorker:
      tensor-parallel-size: 4
      ServiceArgs: {resources: {gpu: 2}}
    ```

    ## Use instead
    ```yaml
    PrefillWorker:
      tensor-parallel-size: 4
      ServiceArgs: {resources: {gpu: 4}}
    ```
    """

    code = "DG302"
    name = "parallelism-exceeds-gpus"
    severity = Severity.ERROR
    also = {Severity.WARNING: "an engine given more GPUs than its parallelism uses"}

    def check(self, ctx):
        for w in ctx.deployment.workers:
            gpus = w.gpus.value
            if not w.is_engine or not isinstance(gpus, int) or gpus <= 0 or w.known("engine_part"):
                continue
            if _parallelism_elsewhere(w):
                continue
            tp, pp = as_int(w.value("tp", 1)), as_int(w.value("pp", 1))
            dp = as_int(w.value("dp", 1))
            if tp is None or pp is None:
                continue
            need, have = tp * pp, gpus * w.nodes
            nodes = f" × {w.nodes} nodes" if w.nodes > 1 else ""
            if need > have:
                yield ctx.finding(self, w.where("tp"), f"{w.name} shards over {need} GPUs (tensor parallel {tp} × pipeline parallel {pp}) but is given {gpus}{nodes}",
                                  worker=w, fix=Fix(f"give it {need} GPUs, or lower the parallelism"))
            elif need < have and dp == 1 and w.gpus.span is not None and not _unknown_flags(w):
                yield ctx.finding(self, w.gpus.span, f"{w.name} is given {gpus}{nodes} GPUs but its parallelism uses {need}: {have - need} sit reserved and idle",
                                  worker=w, fix=Fix(f"give it {need} GPUs, or raise tensor-parallel-size"), severity=Severity.WARNING)
