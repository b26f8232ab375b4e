"""TensorRT-LLM's disaggregated serving config (`trtllm-serve disaggregated -c disagg_config.yaml`: `context_servers`,
`generation_servers`) and its engine configs (`--extra-engine-args`, `--config`), including ones kept in a ConfigMap.

Sources: NVIDIA/TensorRT-LLM examples/disaggregated/disagg_config.yaml, docs/source/features/disagg-serving.md and
tensorrt_llm/llmapi/disagg_utils.py (see ../shared/DOMAIN.md §7).
"""

from __future__ import annotations

from typing import Any

from ..knowledge.versions import Target
from ..model import Deployment, Host, Issue, Setting, Worker
from ..source import SourceDocument, Span
from .common import count

# engine-config key path -> setting
_ENGINE_KEYS = {
    ("tensor_parallel_size",): "tp",
    ("pipeline_parallel_size",): "pp",
    ("kv_cache_config", "dtype"): "kv_cache_dtype",
    ("kv_cache_config", "tokens_per_block"): "block_size",
    ("tokens_per_block",): "block_size",
    ("cache_transceiver_config", "backend"): "transfer_backend",
    ("cache_transceiver_config",): "cache_transceiver",
    ("dtype",): "dtype",
    ("orchestrator_type",): "orchestrator_type",  # `ray`: Ray places the ranks, not MPI on this node (DG302)
}


def looks_like_disagg_config(data: Any) -> bool:
    return isinstance(data, dict) and ("context_servers" in data or "generation_servers" in data)


def looks_like_engine_config(data: Any) -> bool:
    return isinstance(data, dict) and any(k in data for k in ("cache_transceiver_config", "kv_cache_config", "disable_overlap_scheduler")) \
        and "context_servers" not in data


def looks_like_engine_config_alone(data: Any) -> bool:
    """An engine config given alone: it must name a key that only TensorRT-LLM's LlmArgs reads for disaggregated
    serving (`cache_transceiver_config`, `disable_overlap_scheduler`: fields of TorchLlmArgs in
    NVIDIA/TensorRT-LLM tensorrt_llm/llmapi/llm_args.py at 0004396); `kv_cache_config` alone is too common a word."""
    return looks_like_engine_config(data) and any(k in data for k in ("cache_transceiver_config", "disable_overlap_scheduler"))


def read_engine_config_alone(doc: SourceDocument, dep: Deployment, target: Target) -> None:
    """The file `trtllm-serve --extra-engine-args` (or `--config`) reads, without the launcher: one engine whose role
    the launcher decides (`--server-role`, Dynamo's `--disaggregation-mode`, a router's server list), not this file
    nor its name. Only what this file sets is checked; nothing is assumed about the other side."""
    dep.format = "trtllm"
    span = Span(*doc.marks.value(()))
    w = Worker(name=f"engine config {doc.path.rsplit('/', 1)[-1]}", role="unknown",
               role_why="an engine config alone: the command that passes it gives the role", program="trtllm-serve", engine="trtllm",
               system="trtllm", path=doc.path, span=span, target=target.copy(), host=Host("unknown", "launcher", f"trtllm-config:{doc.path}"),
               role_from="none")
    apply_engine_config(w, doc, (), doc.data)
    w.notes.append("read as a TensorRT-LLM engine config on its own: the model, role and placement come from the command that passes it, "
                   "which is not in this file")
    dep.workers.append(w)


def apply_engine_config(w: Worker, doc: SourceDocument, base: tuple, cfg: dict, to_file=lambda s: s) -> None:
    for path, key in _ENGINE_KEYS.items():
        node: Any = cfg
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            continue
        span = to_file(Span(*doc.marks.value(base + path)))
        w.settings[key] = Setting(True if key == "cache_transceiver" else node, span, ".".join(path))


def read_disagg_config(doc: SourceDocument, dep: Deployment, target: Target) -> None:
    data = doc.data
    dep.format = "trtllm"
    model = data.get("model")
    for key, role in (("context_servers", "prefill"), ("generation_servers", "decode")):
        block = data.get(key)
        if not isinstance(block, dict):
            continue
        span = Span(*doc.marks.key((key,)))
        w = Worker(name=key, role=role, role_why=key, program="trtllm-serve", engine="trtllm", system="trtllm", path=doc.path, span=span,
                   target=target.copy(), host=Host("process", key, f"trtllm:{doc.path}:{key}"), role_from="field")
        if model is not None:
            w.settings["model"] = Setting(model, Span(*doc.marks.value(("model",))), "model")
        merged = {k: v for k, v in data.items() if k not in ("context_servers", "generation_servers")}
        apply_engine_config(w, doc, (), merged)
        apply_engine_config(w, doc, (key,), block)
        if "num_instances" in block:
            w.replicas = Setting(count(block["num_instances"]), Span(*doc.marks.value((key, "num_instances"))), "num_instances")
        dep.workers.append(w)
    dep.issues.extend(instances_issues(doc, (), data))


# extract_ctx_gen_cfgs: with `urls` given, "Number of hostnames (N) should be equal to the number of instances (M)" is a
# ValueError (num_instances defaults to 1), raised by parse_disagg_config_file when `trtllm-serve disaggregated` starts
# (NVIDIA/TensorRT-LLM@0228a71223416496ff056a157936bad2e42c762f tensorrt_llm/llmapi/disagg_utils.py)
INSTANCES_SOURCE = "NVIDIA/TensorRT-LLM@0228a71 tensorrt_llm/llmapi/disagg_utils.py extract_ctx_gen_cfgs"


def instances_issues(doc: SourceDocument, base: tuple, cfg: Any, to_file=lambda s: s) -> list[Issue]:
    """`trtllm_instances` issues: a server section whose `urls` are not `num_instances` in number. None with a
    `disagg_cluster` section: the servers then join at run time and the sections' urls are not read
    (extract_disagg_cfg builds no server configs when `disagg_cluster` is set, same commit)."""
    out: list[Issue] = []
    if isinstance(cfg, dict) and cfg.get("disagg_cluster"):
        return out
    for key in ("context_servers", "generation_servers"):
        block = cfg.get(key) if isinstance(cfg, dict) else None
        urls = block.get("urls") if isinstance(block, dict) else None
        if not isinstance(urls, list) or not urls:
            continue
        n = block.get("num_instances", 1)
        if not isinstance(n, int) or isinstance(n, bool) or n == len(urls):
            continue
        at = base + (key, "num_instances") if "num_instances" in block else base + (key, "urls")
        out.append(Issue("trtllm_instances", to_file(Span(*doc.marks.value(at))), key,
                         data=(("urls", len(urls)), ("num_instances", n), ("written", "num_instances" in block))))
    return out

