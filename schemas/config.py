"""Parse a Dynamo v0 service config for the doctor: resolve `common-configs`, type every section, report what does not fit.

Typing follows the JSON Schema generated from the pydantic models in `dynamo_v0.py` (see `typecheck.py` for why the
doctor does not import pydantic). Unknown sections and keys are kept and reported, never dropped in silence, and
nothing here rewrites the user's settings.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Literal, NamedTuple

from .cmdline import flag_name
from .source import Path, SourceDocument
from .typecheck import Values, section_schema, validate_object

SECTION_NAMES = ("Common", "Frontend", "Processor", "Router", "VllmWorker", "PrefillWorker", "Planner")  # typed by the models
WORKER_SECTIONS = ("VllmWorker", "PrefillWorker")


@lru_cache(maxsize=1)
def known_services() -> dict[str, dict[str, Any]]:
    """Every service section of the Dynamo v0 example graphs, with its role (schemas/knowledge/curated.json)."""
    from .knowledge import curated

    return {k: v for k, v in curated("dynamo_v0_services").items() if not k.startswith("_")}


def _schema_section(name: str) -> str | None:
    """The typed model a section is checked against: its own, a vLLM engine section's, or none (ServiceArgs only)."""
    if name in SECTION_NAMES:
        return name
    info = known_services().get(name, {})
    if info.get("engine") == "vllm":
        return "PrefillWorker"
    return None


# Keys Dynamo v0's example workers read besides vLLM's engine arguments: their own switches and placement, the
# multimodal, SGLang and TensorRT-LLM workers' options, and vLLM options that configs of that era carried for the
# OpenAI layer or newer engines. Sources: ai-dynamo/dynamo examples/llm/utils/vllm.py parse_vllm_args (0f42bc4),
# examples/{multimodal,sglang,tensorrt_llm}/configs (50f3636).
DYNAMO_V0_WORKER_KEYS = frozenset(
    """
    router remote-prefill conditional-disagg max-local-prefill-length max-prefill-queue-size common-configs
    ServiceArgs router-num-threads cuda-visible-device-offset data-parallel-size-local data-parallel-address
    data-parallel-rpc-port data-parallel-start-rank data-parallel-rank image-token-id num-patches prompt-template
    enable-disagg extra-engine-args model-path tp tp-size skip-tokenizer-init disaggregation-mode
    disaggregation-transfer-backend disaggregation-bootstrap-port mem-fraction-static page-size served-model-name
    enable-reasoning reasoning-parser enable-auto-tool-choice tool-call-parser chat-template kv-events-config
    additional-config enable-sleep-mode generation-config override-generation-config kv-cache-memory-bytes
    max-num-partial-prefills long-prefill-token-threshold
    """.split()
)


# The sections Dynamo v0's own example graph parsed with the vLLM it pinned; the other vLLM services of the later
# v0 examples (VllmDecodeWorker, ...) and `Common`, which any of them may pull from, ran other vLLM releases.
V0_PINNED_VLLM_SECTIONS = ("VllmWorker", "PrefillWorker", "Processor")


@lru_cache(maxsize=4)
def engine_keys(pinned: bool, engine: str = "vllm") -> frozenset[str]:
    """Every key an engine-parsed Dynamo v0 section understands: the engine's arguments read from its wheels
    (schemas/knowledge; vLLM's in the releases Dynamo v0 pinned when `pinned`, else in any release; SGLang's
    ServerArgs flags in any release) and the workers' own keys."""
    from .knowledge import fact, flags_defined, known_releases

    if engine == "sglang":
        return DYNAMO_V0_WORKER_KEYS | frozenset(f[2:] for f in flags_defined("sglang", "sglang", frozenset(known_releases()["sglang"])))
    releases = fact("dynamo.v0.vllm_engine").releases if pinned else frozenset(known_releases()["vllm"])
    return DYNAMO_V0_WORKER_KEYS | frozenset(f[2:] for f in flags_defined("vllm", "vllm", releases))


def open_section(section: str) -> bool:
    """A section whose engine's options we have no table of (TensorRT-LLM's v0 workers read an engine config file of
    their own): its keys are not checked, since any near miss could be a real option."""
    return known_services().get(section, {}).get("engine") == "trtllm"


DISAGG_KEYS = ("remote-prefill", "conditional-disagg", "max-local-prefill-length", "max-prefill-queue-size")


@lru_cache(maxsize=256)
def known_keys(section: str) -> frozenset[str]:
    """Keys a section is known to understand (the doctor reports only near misses of these; the editor schema
    allows only these where the section is closed): its typed keys and `passed_on_keys`."""
    typed = _schema_section(section)
    own = frozenset(section_schema(typed)["properties"]) if typed else frozenset({"ServiceArgs"})
    return own | passed_on_keys(section)


def passed_on_keys(section: str) -> frozenset[str]:
    """Untyped keys a section understands: `common-configs`, and for a vLLM-parsed section every engine argument of
    the vLLM it ran (the release Dynamo v0 pinned for its own workers, any release for the others)."""
    if section in V0_PINNED_VLLM_SECTIONS:
        return engine_keys(True) | {"common-configs"}
    engine = known_services().get(section, {}).get("engine")
    if section == "Common":  # shared by the vLLM and SGLang workers of a graph alike
        return engine_keys(False) | engine_keys(False, "sglang") | {"common-configs"}
    if engine in ("vllm", "sglang"):
        return engine_keys(False, engine) | {"common-configs"}
    return frozenset({"common-configs"})


SERVICE_ARGS_KEYS = frozenset({"workers", "resources", "envs"})
RESOURCES_KEYS = frozenset({"gpu", "cpu", "memory"})


def did_you_mean(word: str, candidates: frozenset[str] | tuple[str, ...]) -> str | None:
    """The closest known name, treating `_`/`-` and case as the same."""
    import difflib  # only when there is a name to match

    norm = {flag_name(c.lower()): c for c in candidates}
    key = flag_name(word.lower())
    if key in norm and norm[key] != word:
        return norm[key]
    match = difflib.get_close_matches(key, list(norm), n=1, cutoff=0.8)
    return norm[match[0]] if match else None


class SchemaIssue(NamedTuple):
    """Something in the file that does not fit the models, for the doctor to report."""

    kind: Literal["unknown_section", "unknown_key", "wrong_type", "common_key_missing"]
    path: Path  # where in the document
    message: str
    suggestion: str | None = None
    key_position: bool = True  # point at the key (True) or at the value


class Section:
    """One service after `common-configs` resolution: typed values and where each came from."""

    __slots__ = ("name", "model", "resolved", "origin", "own")

    def __init__(self, name: str, model: Values, resolved: dict[str, Any], origin: dict[str, Path], own: dict[str, Any]):
        self.name = name
        self.model = model  # typed values after resolution, by Python name (`model.remote_prefill`); defaults where unset
        self.resolved = resolved  # key -> value actually applied (own keys, plus pulled-in Common keys)
        self.origin = origin  # key -> document path it came from (own or ("Common", key))
        self.own = own  # the keys written in the section itself

    def path_of(self, key: str) -> Path:
        """Document path of `key`, or of the section itself when the key is not set."""
        return self.origin.get(key, (self.name,))

    def is_set(self, key: str) -> bool:
        return key in self.resolved


class DynamoV0Parse:
    """A parsed config: the sections present, what did not fit, and the source they came from."""

    def __init__(self, doc: SourceDocument):
        self.doc = doc
        self.sections: dict[str, Section] = {}
        self.issues: list[SchemaIssue] = []

    def section(self, name: str) -> Section | None:
        return self.sections.get(name)

    def workers(self, name: str) -> int:
        """Worker processes of a service; 0 when the section is absent."""
        sec = self.sections.get(name)
        return sec.model.service_args.workers if sec is not None else 0


def looks_like_dynamo_v0(data: Any) -> bool:
    """True when a document declares itself a Dynamo v0 service config: at least one top-level key is a service
    section of some Dynamo v0 release (the v0.1-v0.3 example graphs, plus `Common`), and every other key is one or a
    near miss of one (`VLLMWorker`, reported by DG401). An unknown key alone (`router:`) never makes a file v0."""
    if not isinstance(data, dict) or not data or "kind" in data:
        return False
    known = tuple(known_services())
    names = list(data)
    if not all(isinstance(k, str) for k in names) or not any(k in known for k in names):
        return False
    return all(k in known or did_you_mean(k, known) for k in names)


def v0_near_misses(data: Any) -> list[tuple[str, str]]:
    """(key, section) for top-level keys that only resemble Dynamo v0 sections, when every key does: such a file is
    not read as v0 (nothing in it is a section), but the error can say what it may have meant."""
    if not isinstance(data, dict) or not data or "kind" in data:
        return []
    known = tuple(known_services())
    # v0 sections are CamelCase class names: a lower-case key (`router:`) is someone else's setting, not a typo
    hints = [(k, did_you_mean(k, known) if k[:1].isupper() else None) for k in data if isinstance(k, str)]
    return [(k, h) for k, h in hints if h] if all(h for _, h in hints) and len(hints) == len(data) else []


def parse_dynamo_v0(doc: SourceDocument, rendered: Callable[[Any], bool] | None = None) -> DynamoV0Parse:
    """Resolve `common-configs`, validate every section and collect what does not fit; never raises on bad values.
    `rendered`: true for a value a template fills in before Dynamo reads the file (a Helm `{{ }}` action): its type is
    not known here, so it is not typed (never a wrong_type issue) and the model keeps the default in its place."""
    out = DynamoV0Parse(doc=doc)
    data = doc.data if isinstance(doc.data, dict) else {}
    services = known_services()
    for name in data:
        if name not in services:
            hint = did_you_mean(str(name), tuple(n for n in services if n not in data))
            out.issues.append(SchemaIssue("unknown_section", (name,), f"section {name!r} is no service of the Dynamo v0 example graphs", hint))
    common_raw = data.get("Common") if isinstance(data.get("Common"), dict) else {}
    for name in data:
        if not isinstance(name, str):
            continue
        raw = data[name]
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            out.issues.append(SchemaIssue("wrong_type", (name,), f"section {name} must be a mapping of keys, got {_type_name(raw)}", key_position=False))
            raw = {}
        resolved, origin = _resolve(name, raw, common_raw, out)
        model = _validate(name, _known_only(resolved, rendered) if rendered else resolved, origin, out)
        out.sections[name] = Section(name=name, model=model, resolved=resolved, origin=origin, own=raw)
        _check_keys(name, raw, out)
    return out


def _resolve(name: str, raw: dict[str, Any], common: dict[str, Any], out: DynamoV0Parse) -> tuple[dict[str, Any], dict[str, Path]]:
    resolved: dict[str, Any] = {}
    origin: dict[str, Path] = {}
    pulled = raw.get("common-configs")
    if name != "Common" and isinstance(pulled, list):
        for i, key in enumerate(pulled):
            if not isinstance(key, str):
                continue
            if key not in common and key not in raw:
                # a key the section sets itself takes its own value either way: as_args applies a Common key only
                # `if key in common and key not in service_config` (ai-dynamo/dynamo@1cb71d6f32f3d4b0a577c57b4e421206d8901bba
                # deploy/sdk/src/dynamo/sdk/lib/config.py ServiceConfig.as_args), so nothing is lost
                hint = did_you_mean(key, frozenset(k for k in common if isinstance(k, str)))
                out.issues.append(SchemaIssue("common_key_missing", (name, "common-configs", i), f"common-configs names {key!r}, which Common does not define", hint, key_position=False))
            elif key not in raw:
                resolved[key] = common[key]
                origin[key] = ("Common", key)
    vllm_parsed = name == "Common" or known_services().get(name, {}).get("engine") == "vllm"
    for key, value in raw.items():
        # vLLM's FlexibleArgumentParser reads --remote_prefill as --remote-prefill: so does the typed view
        as_key = key
        if vllm_parsed and isinstance(key, str) and flag_name(key) != key and flag_name(key) in known_keys(name):
            as_key = flag_name(key)
        resolved[as_key] = value
        origin[as_key] = (name, key)
    return resolved, origin


def _known_only(value: Any, rendered: Callable[[Any], bool]) -> Any:
    """`value` without the parts a template fills in (at any depth of a mapping)."""
    if isinstance(value, dict):
        return {k: _known_only(v, rendered) for k, v in value.items() if not rendered(v)}
    return value


def _validate(name: str, resolved: dict[str, Any], origin: dict[str, Path], out: DynamoV0Parse) -> Values:
    typed = _schema_section(name)
    if typed is None:
        schema = {"properties": {"ServiceArgs": section_schema("PrefillWorker")["properties"]["ServiceArgs"]}}
        values, errors = validate_object(schema, {k: v for k, v in resolved.items() if k == "ServiceArgs"})
    else:
        values, errors = validate_object(section_schema(typed), resolved)
    for err in errors:
        top = str(err.loc[0])
        path = origin.get(top, (name, top)) + tuple(err.loc[1:])
        where = ".".join(str(p) for p in err.loc)
        out.issues.append(SchemaIssue("wrong_type", path, f"{where}: expected {err.expected}, got {_show(err.got)}", key_position=False))
    return values


def _show(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (dict, list)):
        return _type_name(value)
    return json.dumps(value) if isinstance(value, (bool, int, float)) or value is None else repr(value)


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _check_keys(name: str, raw: dict[str, Any], out: DynamoV0Parse) -> None:
    known = known_keys(name)
    normalised = _normalised(name)
    for key in raw:
        if open_section(name) or not isinstance(key, str) or key in known or flag_name(key) in normalised:
            continue  # FlexibleArgumentParser reads remote_prefill as remote-prefill
        hint = did_you_mean(key, known)
        if hint and not _extends(key, hint):
            out.issues.append(SchemaIssue("unknown_key", (name, key), f"unknown key {key!r} in {name}", hint))
    sargs = raw.get("ServiceArgs")
    if isinstance(sargs, dict):
        for key in sargs:
            hint = did_you_mean(str(key), SERVICE_ARGS_KEYS) if key not in SERVICE_ARGS_KEYS else None
            if hint:
                out.issues.append(SchemaIssue("unknown_key", (name, "ServiceArgs", key), f"unknown key {key!r} in {name}.ServiceArgs", hint))
        res = sargs.get("resources")
        if isinstance(res, dict):
            for key in res:
                hint = did_you_mean(str(key), RESOURCES_KEYS) if key not in RESOURCES_KEYS else None
                if hint:
                    out.issues.append(SchemaIssue("unknown_key", (name, "ServiceArgs", "resources", key), f"unknown key {key!r} in {name}.ServiceArgs.resources", hint))


@lru_cache(maxsize=256)
def _normalised(section: str) -> frozenset[str]:
    return frozenset(flag_name(k) for k in known_keys(section))


def _extends(word: str, known: str) -> bool:
    """`data-parallel-size-local` is another option than `data-parallel-size`, not a typo of it."""
    a, b = flag_name(word.lower()), flag_name(known.lower())
    return a.startswith(b + "-") or b.startswith(a + "-")


def kv_connector(section: Section | None) -> tuple[str | None, str | None]:
    """(connector name, error) of a section's kv-transfer-config; (None, None) when unset."""
    if section is None or not section.is_set("kv-transfer-config"):
        return None, None
    value = section.resolved["kv-transfer-config"]
    if isinstance(value, dict):
        cfg = value
    elif isinstance(value, str):
        try:
            cfg = json.loads(value)
        except json.JSONDecodeError as exc:
            return None, f"kv-transfer-config is not valid JSON: {exc.msg} at character {exc.pos + 1}"
    else:
        return None, None
    if not isinstance(cfg, dict):
        return None, "kv-transfer-config must be a JSON object"
    connector = cfg.get("kv_connector")
    if not isinstance(connector, str) or not connector:
        return None, 'kv-transfer-config has no "kv_connector"'
    return connector, None
