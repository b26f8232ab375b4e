"""What `disagg serve` will run, derived from a Dynamo-style config: workers, routing policy, model shape, ports.

The config is parsed by `disagg.schemas` exactly as the doctor parses it, so the runtime runs what the doctor
checked. Keys the runtime does not use are listed, never dropped in silence; values of the wrong type stop the
start with their `file:line:col`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from disagg.schemas import knowledge
from disagg.schemas.config import DynamoV0Parse, looks_like_dynamo_v0, parse_dynamo_v0
from disagg.schemas.policy import deployment_policy
from disagg.schemas.readers import dynamo_v0 as v0_reader
from disagg.schemas.routing import RoutingPolicy
from disagg.schemas.source import ConfigError, decode_text, load_documents

DEFAULT_BLOCK_SIZE = 16  # vLLM's default, as the doctor assumes


class PlanError(Exception):
    """The config cannot be run; `problems` are `file:line:col: message` lines."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class ModelShape:
    """The model dimensions that size the KV cache: bytes per token = layers × 2 × kv_heads × head_dim × dtype."""

    layers: int = 8
    kv_heads: int = 4
    head_dim: int = 64
    dtype_bytes: int = 2  # bf16

    @property
    def kv_bytes_per_token(self) -> int:
        return self.layers * 2 * self.kv_heads * self.head_dim * self.dtype_bytes


@dataclass(frozen=True)
class WorkerSpec:
    worker_id: str  # e.g. decode-0, prefill-1
    role: str  # decode | prefill
    index: int
    port: int
    host: str = "127.0.0.1"
    kv_address: str = ""  # where peers reach its KV (NIXL/UCX); "" = host

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass
class RuntimePlan:
    config_path: str
    policy: RoutingPolicy
    decode_workers: int
    prefill_workers: int
    block_size: int
    max_model_len: int
    served_model_name: str
    router: str  # round-robin | random | kv
    enable_prefix_caching: bool
    shape: ModelShape
    frontend_port: int
    notes: list[str] = field(default_factory=list)  # what the runtime does not use, said out loud
    layouts: dict[str, dict] = field(default_factory=dict)  # role -> its workers' KV layout (kv_layout.KVLayoutInfo as JSON)
    served: dict[str, Any] = field(default_factory=dict)  # what /config serves: an allow-list (served_config.py), never the file's text
    model_path: str = ""  # VllmWorker's `model` (a local folder or a model name vLLM can load)
    engine_keys: dict[str, dict[str, Any]] = field(default_factory=dict)  # role -> engine options of its section
    effective: dict[str, Any] = field(default_factory=dict)  # resolved sections (the workers' envs come from here; never served)

    def to_json(self) -> str:
        d = asdict(self)
        d["policy"] = self.policy._asdict()
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> "RuntimePlan":
        d = json.loads(text)
        d["policy"] = RoutingPolicy(**d["policy"])
        d["shape"] = ModelShape(**d["shape"])
        return cls(**d)


def _problem(parse: DynamoV0Parse, path: tuple, message: str, at_value: bool = True) -> str:
    marks = parse.doc.marks
    p = marks.value(path) if at_value else marks.key(path)
    return f"{parse.doc.path}:{p.line}:{p.column}: {message}"


def load_plan(path: str) -> RuntimePlan:
    """Read a config and derive the plan; raises ConfigError (unreadable) or PlanError (cannot be run)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise ConfigError(path, 1, 1, f"cannot read: {exc.strerror}") from None
    text = decode_text(path, raw)
    if path.endswith((".sh", ".bash")) or text.startswith("#!"):
        raise ConfigError(path, 1, 1, "a shell script: `disagg serve` runs Dynamo v0 service configs (YAML with VllmWorker and PrefillWorker sections); "
                                      f"`disagg doctor {path}` checks what the script starts")
    docs = load_documents(path, text)
    if not docs or not isinstance(docs[0].data, dict) or not looks_like_dynamo_v0(docs[0].data):
        raise ConfigError(path, 1, 1, "not a Dynamo service config (expected sections such as VllmWorker, PrefillWorker)")
    parse = parse_dynamo_v0(docs[0])
    problems = [_problem(parse, i.path, i.message) for i in parse.issues if i.kind == "wrong_type"]
    notes = []
    for issue in parse.issues:
        if issue.kind in ("unknown_section", "unknown_key"):
            hint = f" (did you mean {issue.suggestion!r}?)" if issue.suggestion else ""
            notes.append(_problem(parse, issue.path, f"{issue.message}{hint}: not used by the runtime", at_value=False))
        elif issue.kind == "common_key_missing":
            notes.append(_problem(parse, issue.path, issue.message))
    dec = parse.section("VllmWorker")
    if dec is None:
        problems.append(f"{path}:1:1: no VllmWorker section: there is no decode worker to run")
    if problems:
        raise PlanError(problems)
    # The deployment model (schemas/model.py), read as the doctor reads it: the routing policy and each role's KV
    # layout come from its workers' settings, computed once (schemas/policy.py, kv_layout.py).
    dep = v0_reader.read(docs[0], knowledge.new_target())
    by_section = {w.section: w for w in dep.workers}
    pre = parse.section("PrefillWorker")
    proc = parse.section("Processor")
    front = parse.section("Frontend")
    m = dec.model
    block_size = m.block_size or (proc.model.block_size if proc else None) or DEFAULT_BLOCK_SIZE
    max_len = m.max_model_len or (proc.model.max_model_len if proc else None) or 8192
    router = (proc.model.router if proc else None) or "round-robin"
    model_name = (front.model.served_model_name if front else None) or m.served_model_name or m.model or "mock"
    prefill_workers = pre.model.service_args.workers if pre is not None else 0
    if pre is not None and pre.model.service_args.resources.gpu == 0:
        notes.append(_problem(parse, ("PrefillWorker", "ServiceArgs", "resources", "gpu"), "gpu: 0: the mock engine runs the prefill worker anyway"))
    port = front.model.port if front else 8000
    effective = {name: {k: v for k, v in sec.resolved.items()} for name, sec in parse.sections.items()}
    plan = RuntimePlan(
        config_path=os.path.abspath(path),
        policy=deployment_policy(dep),
        decode_workers=max(m.service_args.workers, 0),
        prefill_workers=max(prefill_workers, 0),
        block_size=block_size,
        max_model_len=max_len,
        served_model_name=model_name,
        router=router,
        enable_prefix_caching=bool(m.enable_prefix_caching),
        shape=model_shape(m.model),
        frontend_port=port,
        notes=notes,
        effective=json.loads(json.dumps(effective, default=str)),
        model_path=m.model or "",
        engine_keys={role: dict(sec.resolved) for role, sec in (("decode", dec), ("prefill", pre)) if sec is not None},
    )
    from .kv_layout import layout_from
    from .served_config import served_config

    plan.served = served_config(plan, docs[0])
    for role, section in (("decode", "VllmWorker"), ("prefill", "PrefillWorker")):
        w = by_section.get((section,))
        model = str(w.known("model") or "") if w is not None else ""
        plan.layouts[role] = layout_from(w, m.model or model_name, model_shape(model or m.model)).to_json()
    return plan


def model_shape(model: str | None) -> ModelShape:
    """The KV shape of a local Hugging Face model folder's config.json, else a small default shape."""
    if not model or not os.path.isfile(os.path.join(model, "config.json")):
        return ModelShape()
    try:
        with open(os.path.join(model, "config.json"), encoding="utf-8") as handle:
            cfg = json.load(handle)
        heads = int(cfg["num_attention_heads"])
        return ModelShape(
            layers=int(cfg["num_hidden_layers"]),
            kv_heads=int(cfg.get("num_key_value_heads", heads)),
            head_dim=int(cfg.get("head_dim") or int(cfg["hidden_size"]) // heads),
            dtype_bytes={"float32": 4, "float16": 2, "bfloat16": 2}.get(str(cfg.get("torch_dtype", "bfloat16")), 2),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return ModelShape()
