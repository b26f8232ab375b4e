"""Each worker's KV layout, and the decode worker's own check of a prefill worker's before any byte moves.

A prefill worker announces its layout in its channel handshake and in every KV handle it issues; the decode worker
compares it with its own, as vLLM's NixlConnector handshake does, and refuses KV it could not read right, with the
reason (`disagg_engine_kv_refused_total{reason}`). The runtime decides this from its workers' own settings, not from
the doctor's findings. The rules, and where they come from:
- model: KV of another model is not this model's cache.
- dtype: the model dtype or the KV-cache dtype differ (`auto` is the model's own): the bytes would be read in the
  wrong format (vLLM checks both in its NIXL handshake, vllm/distributed/kv_transfer/kv_connector/v1/nixl_connector.py).
- shape: layers, KV heads or head size differ: another number of bytes per token.
- tp_ratio: the decode TP is not a multiple of the prefill TP (vLLM's NixlConnector supports prefill TP <= decode TP
  with decode TP a multiple of it; the first transfer fails otherwise).
- block_size: KV moves block by block. vLLM's NixlConnector splits a smaller prefill block when prefill TP <= decode
  TP; Dynamo v0's DynamoNixlConnector needs equal block sizes (ai-dynamo/dynamo#1210, #1233).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_BLOCK_SIZE = 16  # vLLM's default when the section sets none
KV_REFUSAL_REASONS = ("model", "dtype", "shape", "tp_ratio", "block_size", "no_layout")


@dataclass(frozen=True)
class KVLayoutInfo:
    model: str
    block_size: int
    dtype: str  # the model dtype as configured; "auto": the model's own
    kv_cache_dtype: str  # "auto": the model dtype
    tp: int
    layers: int
    kv_heads: int
    head_dim: int
    dtype_bytes: int
    connector: str  # the kv-transfer-config's kv_connector ("" when none)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> "KVLayoutInfo | None":
        if not isinstance(data, dict):
            return None
        try:
            return cls(**{k: data[k] for k in cls.__dataclass_fields__})
        except (KeyError, TypeError):
            return None


def _int(value: Any, default: int) -> int:
    try:
        return int(str(value).strip()) if value is not None and not isinstance(value, bool) else default
    except (TypeError, ValueError):
        return default


def layout_from(worker, default_model: str, shape) -> KVLayoutInfo:
    """The KV layout of a deployment-model worker (schemas/model.py `Worker`: its settings as the engine parses them;
    None: the defaults), with `shape` the model's KV dimensions (plan.ModelShape)."""
    known = worker.known if worker is not None else (lambda key, default=None: default)
    config = known("kv_config")
    connector = known("kv_connector") or (config.get("kv_connector") if isinstance(config, dict) else None) or ""
    return KVLayoutInfo(
        model=str(known("model") or default_model),
        block_size=_int(known("block_size"), DEFAULT_BLOCK_SIZE),
        dtype=str(known("dtype") or "auto").lower(),
        kv_cache_dtype=str(known("kv_cache_dtype") or "auto").lower(),
        tp=_int(known("tp"), 1),
        layers=shape.layers, kv_heads=shape.kv_heads, head_dim=shape.head_dim, dtype_bytes=shape.dtype_bytes,
        connector=str(connector),
    )


def layout_of(plan, role: str) -> KVLayoutInfo:
    """A worker's layout as its plan computed it (`RuntimePlan.layouts`)."""
    layout = KVLayoutInfo.from_json(plan.layouts.get(role))
    if layout is None:
        raise ValueError(f"the plan has no KV layout for the {role} role")
    return layout


def _dtype(d: str) -> str:
    return {"bf16": "bfloat16", "half": "float16", "fp16": "float16", "float": "float32", "fp32": "float32"}.get(d, d)


def _kv_dtype(layout: KVLayoutInfo) -> str:
    kv = _dtype(layout.kv_cache_dtype)
    return kv if kv != "auto" else _dtype(layout.dtype)


def refusal(decode: KVLayoutInfo, prefill: KVLayoutInfo | None) -> tuple[str, str] | None:
    """(reason, why) when a decode worker with layout `decode` must refuse KV made with `prefill`'s; None to accept."""
    if prefill is None:
        return "no_layout", "the prefill worker did not say how its KV is laid out"
    if decode.model != prefill.model:
        return "model", f"the prefill worker's KV is of model {prefill.model!r}, this decode worker serves {decode.model!r}"
    d, p = _dtype(decode.dtype), _dtype(prefill.dtype)
    if "auto" not in (d, p) and d != p:
        return "dtype", f"dtype differs: prefill {p}, decode {d}; the KV would be read in the wrong format"
    dk, pk = _kv_dtype(decode), _kv_dtype(prefill)
    # `auto` is the model's dtype, unknown here: it differs from an fp8 cache (no model's own dtype), not from a 16-bit one.
    if dk != pk and ("auto" not in (dk, pk) or any(x.startswith("fp8") for x in (dk, pk))):
        return "dtype", f"KV-cache dtype differs: prefill {pk}, decode {dk} (auto: the model's dtype); the KV would be read in the wrong format"
    dshape, pshape = (decode.layers, decode.kv_heads, decode.head_dim, decode.dtype_bytes), (prefill.layers, prefill.kv_heads, prefill.head_dim, prefill.dtype_bytes)
    if dshape != pshape:
        return "shape", f"KV shape (layers, KV heads, head size, bytes) differs: prefill {pshape}, decode {dshape}"
    if decode.tp % prefill.tp:
        return "tp_ratio", f"decode tensor parallel {decode.tp} is not a multiple of prefill tensor parallel {prefill.tp}"
    if decode.block_size != prefill.block_size:
        upstream = prefill.connector == decode.connector == "NixlConnector"
        if not (upstream and prefill.block_size < decode.block_size and decode.block_size % prefill.block_size == 0 and prefill.tp <= decode.tp):
            return "block_size", f"prefill block size {prefill.block_size} and decode block size {decode.block_size} cannot exchange KV"
    return None
