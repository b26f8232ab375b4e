"""TensorRT-LLM's disaggregated serving config (`trtllm-serve disaggregated -c disagg_config.yaml`: `context_servers`,
`generation_servers`) and its engine configs (`--extra-engine-args`, `--config`), including ones kept in a ConfigMap.

Sources: NVIDIA/TensorRT-LLM examples/disaggregated/disagg_config.yaml, docs/source/features/disagg-serving.md and
tensorrt_llm/llmapi/disagg_utils.py (see ../shared/DOMAIN.md §7).
"""

from __future__ import annotations

from typing import Any

from ..knowledge.versions import Target
from ..model import Deployment, Host, Setting, Worker
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
}


def looks_like_disagg_config(data: Any) -> bool:
    return isinstance(data, dict) and ("context_servers" in data or "generation_servers" in data)


def looks_like_engine_config(data: Any) -> bool:
    return isinstance(data, dict) and any(k in data for k in ("cache_transceiver_config", "kv_cache_config", "disable_overlap_scheduler")) \
        and "context_servers" not in data


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
