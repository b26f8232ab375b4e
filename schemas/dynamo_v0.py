"""pydantic models of the Dynamo v0.1–v0.3 service config (the YAML that `dynamo serve -f` read).

These models are the definition: `schemas/dynamo-v0.schema.json` is generated from them (a test fails when it is
stale), and the doctor's fast path (`config.py`) validates against that schema so that the linter's cold start
does not pay for importing pydantic. A property test checks that both accept and coerce the same values.
Keys are kebab-case engine options (`block-size`) except the Frontend's snake_case ones.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

from .cmdline import flag_name

# A whole number written as a string, as pydantic's lax mode reads it (and typecheck.py's lax integer reading).
INTEGER_STRING = r"^\s*[+-]?[0-9]+(_[0-9]+)*(\.0*)?\s*$"


def _kebab(name: str) -> str:
    return flag_name(name)  # the doctor's one key -> flag conversion


def _reject_bool(value: Any) -> Any:
    # YAML `true` is not a number; pydantic's lax mode would read it as 1.
    if isinstance(value, bool):
        raise ValueError("a whole number, not true/false")
    return value


Count = Annotated[int, BeforeValidator(_reject_bool)]
Fraction = Annotated[float, BeforeValidator(_reject_bool)]

_KEBAB = ConfigDict(
    alias_generator=_kebab,
    validate_by_name=True,
    validate_by_alias=True,
    serialize_by_alias=True,
    extra="allow",
    use_attribute_docstrings=True,
)


class Resources(BaseModel):
    model_config = _KEBAB

    gpu: Count | None = None
    """GPUs per worker process (Dynamo accepted numbers and numeric strings such as '1')."""
    cpu: Count | str | None = None
    """CPUs per worker process."""
    memory: str | Count | None = None
    """Memory per worker process, e.g. '40Gi'."""


class ServiceArgsModel(BaseModel):
    """Process and resource placement of a service: not an engine option."""

    model_config = _KEBAB

    workers: Count = 1
    """Number of worker processes of this service."""
    resources: Resources = Field(default_factory=Resources)
    """Resources each worker process asks for."""
    envs: list[Any] | dict[str, Any] | None = None
    """Environment variables set for each worker process."""


class EngineOptions(BaseModel):
    """vLLM engine options a worker passes on as `--key value` (true becomes a bare flag, false is dropped)."""

    model_config = _KEBAB

    model: str | None = None
    """Model name or path served by the engine."""
    served_model_name: str | None = None
    """Name clients and the router use for the model; defaults to `model`."""
    block_size: Count | None = None
    """Tokens per KV-cache block. Must match between decode worker, prefill worker and KV router."""
    max_model_len: Count | None = None
    """Longest prompt plus output the engine accepts, in tokens."""
    max_num_batched_tokens: Count | None = None
    """Most tokens the scheduler batches into one step."""
    max_num_seqs: Count | None = None
    """Most sequences running at once."""
    tensor_parallel_size: Count | None = None
    """GPUs one engine shards the model over (tensor parallelism)."""
    pipeline_parallel_size: Count | None = None
    """Pipeline-parallel stages."""
    gpu_memory_utilization: Fraction | None = None
    """Share of GPU memory the engine may take (0-1)."""
    enforce_eager: StrictBool | None = None
    """Run without CUDA graphs."""
    enable_prefix_caching: StrictBool | None = None
    """Reuse KV blocks of repeated prompt prefixes."""
    enable_chunked_prefill: StrictBool | None = None
    """Split long prefills into chunks scheduled with decodes."""
    dtype: str | None = None
    """Weight and activation dtype (auto, float16, bfloat16, float32)."""
    kv_cache_dtype: str | None = None
    """KV-cache dtype (auto, fp8, ...). Must match between the workers that exchange KV."""
    quantization: str | None = None
    """Weight quantization method."""
    kv_transfer_config: str | dict[str, Any] | None = None
    """KV connector settings as JSON, e.g. '{"kv_connector":"DynamoNixlConnector"}'. Needed on both workers."""
    router: str | None = None
    """How requests reach the workers (round-robin, random, kv)."""
    disable_log_requests: StrictBool | None = None
    """Do not log each request."""
    common_configs: list[str] | None = None
    """Keys pulled in from the `Common` section (the service's own value wins)."""
    service_args: ServiceArgsModel = Field(default_factory=ServiceArgsModel, alias="ServiceArgs")
    """Process and resource placement."""


class PrefillWorkerSection(EngineOptions):
    """The remote prefill worker: pulls prefill requests from the queue and sends the KV cache to the decode worker."""


class VllmWorkerSection(EngineOptions):
    """The decode worker. The disaggregation switches live here and nowhere else."""

    remote_prefill: StrictBool = False
    """Master switch: without it nothing is ever sent to a PrefillWorker."""
    conditional_disagg: StrictBool = False
    """false: every request prefills remotely once remote-prefill is on; true: only long uncached prompts do."""
    max_local_prefill_length: Count = 1000
    """With conditional-disagg, prefills of at most this many uncached tokens stay on the decode worker."""
    max_prefill_queue_size: Count = 3
    """With conditional-disagg, prefill locally once this many remote prefill requests already wait."""



class CommonSection(VllmWorkerSection):
    """Shared keys. A key here reaches a service only if that service lists it in `common-configs`."""


class FrontendSection(BaseModel):
    """The HTTP frontend. Its keys are snake_case."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True, validate_by_name=True, validate_by_alias=True)

    served_model_name: str | None = None
    """Model name clients send; must match the workers' model."""
    endpoint: str | None = None
    """Component endpoint requests go to, e.g. dynamo.Processor.chat/completions."""
    port: Count = 8000
    """HTTP port."""
    model: str | None = None
    """Model served (Dynamo 0.1's example graphs: examples/llm/configs at 3983830)."""
    router: str | None = None
    """How requests reach the workers (examples/vllm_v0/configs/disagg_planner.yaml at 50f3636)."""
    common_configs: list[str] | None = Field(None, alias="common-configs")
    """Keys pulled in from Common."""
    service_args: ServiceArgsModel = Field(default_factory=ServiceArgsModel, alias="ServiceArgs")
    """Process placement."""


class ProcessorSection(BaseModel):
    """Tokenises requests and picks a decode worker."""

    model_config = _KEBAB

    model: str | None = None
    """Model (its tokenizer is used)."""
    block_size: Count | None = None
    """Block size the KV-aware router hashes prompts with; must match the workers'."""
    max_model_len: Count | None = None
    """Longest request accepted, in tokens."""
    router: Literal["round-robin", "random", "kv", "kv-load"] | None = None
    """How decode workers are picked: round-robin, random, kv (KV-cache aware) or kv-load (examples/llm/utils/vllm.py RouterType)."""
    router_num_threads: Count | None = None
    """Threads of the KV router."""
    common_configs: list[str] | None = None
    """Keys pulled in from Common."""
    service_args: ServiceArgsModel = Field(default_factory=ServiceArgsModel, alias="ServiceArgs")
    """Process placement."""


class RouterSection(BaseModel):
    """The KV-aware router."""

    model_config = _KEBAB

    model: str | None = None
    """Model the router serves."""
    model_name: str | None = None
    """Model the router serves (older key)."""
    block_size: Count | None = None
    """Block size for prefix hashing; must match the workers'."""
    min_workers: Count | None = None
    """Workers to wait for before routing."""
    softmax_sample: StrictBool | None = None
    """Sample workers by softmax of their scores."""
    router: str | None = None
    """Router kind."""
    common_configs: list[str] | None = None
    """Keys pulled in from Common."""
    service_args: ServiceArgsModel = Field(default_factory=ServiceArgsModel, alias="ServiceArgs")
    """Process placement."""


class PlannerSection(BaseModel):
    """The planner that scales prefill and decode workers."""

    model_config = _KEBAB

    environment: str | None = None
    """Where the planner acts (local, kubernetes)."""
    no_operation: StrictBool | None = None
    """Observe only; never scale."""


SECTION_MODELS: dict[str, type[BaseModel]] = {
    "Common": CommonSection,
    "Frontend": FrontendSection,
    "Processor": ProcessorSection,
    "Router": RouterSection,
    "VllmWorker": VllmWorkerSection,
    "PrefillWorker": PrefillWorkerSection,
    "Planner": PlannerSection,
}


class DynamoV0Config(BaseModel):
    """A Dynamo v0 service graph config: one section per service."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True, validate_by_name=True, validate_by_alias=True, title="Dynamo v0 service config (disagg)")

    common: CommonSection | None = Field(None, alias="Common")
    """Shared keys, pulled in by a service's common-configs."""
    frontend: FrontendSection | None = Field(None, alias="Frontend")
    """HTTP frontend."""
    processor: ProcessorSection | None = Field(None, alias="Processor")
    """Tokeniser and worker picker."""
    router: RouterSection | None = Field(None, alias="Router")
    """KV-aware router."""
    vllmworker: VllmWorkerSection | None = Field(None, alias="VllmWorker")
    """Decode worker; holds the disaggregation switches."""
    prefillworker: PrefillWorkerSection | None = Field(None, alias="PrefillWorker")
    """Remote prefill worker."""
    planner: PlannerSection | None = Field(None, alias="Planner")
    """Planner."""


# Sections an editor checks key by key (the others take keys we have no complete list of: the planner's, a
# Prometheus config, SGLang's and TensorRT-LLM's workers). Schema definition -> the section whose known keys it takes.
_CLOSED = {
    "CommonSection": "Common", "VllmWorkerSection": "VllmWorker", "PrefillWorkerSection": "PrefillWorker",
    "ProcessorSection": "Processor", "FrontendSection": "Frontend", "VllmServiceSection": "VllmDecodeWorker",
}


def json_schema() -> dict[str, Any]:
    """The JSON Schema checked in as `schemas/dynamo-v0.schema.json`: the models' types, closed for editors.

    The doctor reads only `properties` (typecheck.py). Editors also get closed sets, so that yaml-language-server
    marks `VLLMWorker` or `max-local-prefill-lenght` at once: the sections are the services of the v0 example graphs;
    a vLLM-parsed section takes the keys `config.passed_on_keys` lists (vLLM's engine arguments of the releases that
    section ran, read from vLLM's wheels, in dash or underscore spelling as vLLM's FlexibleArgumentParser accepts
    them, and Dynamo's own keys), the disaggregation switches only where Dynamo reads them; the Frontend and
    ServiceArgs take their own keys. Names beyond the typed ones go in `patternProperties`, which the doctor's
    validator does not read, so its types stay the models'. A whole number may also be written as a numeric
    string (pydantic, and so Dynamo, accepted `gpu: "4"`): such a string is typed by a pattern.
    """
    from .config import DISAGG_KEYS, known_services, passed_on_keys

    schema = DynamoV0Config.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    defs = schema["$defs"]
    defs["VllmServiceSection"] = {**defs["PrefillWorkerSection"], "title": "VllmServiceSection",
                                  "description": "A vLLM worker of the later v0 example graphs (VllmDecodeWorker, VllmPrefillWorker, ...)."}
    defs["VllmServiceSection"]["properties"] = dict(defs["PrefillWorkerSection"]["properties"])
    for node in defs.values():
        for prop in node.get("properties", {}).values():
            _numeric_strings(prop)
    for name, node in defs.items():
        section = _CLOSED.get(name)
        node["additionalProperties"] = section is None and name not in ("ServiceArgsModel", "Resources")
        if section is None:
            continue
        props = node.setdefault("properties", {})
        patterns = node.setdefault("patternProperties", {})
        if section != "Frontend":  # vLLM parses these: an underscore spelling is the same option, typed alike
            for key in [k for k in props if "-" in k]:
                patterns[f"^{key.replace('-', '_')}$"] = props[key]
        allowed = {k for k in passed_on_keys(section) if k not in props}
        if section == "PrefillWorker":
            allowed -= set(DISAGG_KEYS)  # Dynamo's prefill worker never reads the switches (DG106)
        if section != "Frontend":
            allowed |= {k.replace("-", "_") for k in allowed}
        allowed -= set(props) | {p[1:-1] for p in patterns}
        if allowed:
            patterns[_alternation(sorted(allowed))] = {"description": "an option the worker passes on as --key value"}
    others: dict[str, str] = {}
    for service, info in known_services().items():
        if service not in schema["properties"]:
            engine = info.get("engine")
            others[service] = "VllmServiceSection" if engine == "vllm" else "EngineSection" if engine else "ServiceSection"
    defs["ServiceSection"] = {"type": "object", "title": "ServiceSection", "additionalProperties": True,
                              "description": "A service of the v0 example graphs whose keys are its own.",
                              "properties": {"ServiceArgs": {"$ref": "#/$defs/ServiceArgsModel"}}}
    defs["EngineSection"] = {**defs["ServiceSection"], "title": "EngineSection", "description": "An SGLang or TensorRT-LLM worker of the v0 example graphs."}
    for ref in sorted(set(others.values())):
        names = sorted(s for s, r in others.items() if r == ref)
        schema.setdefault("patternProperties", {})[_alternation(names)] = {"anyOf": [{"$ref": f"#/$defs/{ref}"}, {"type": "null"}]}
    schema["additionalProperties"] = False
    return schema


def _numeric_strings(prop: dict[str, Any]) -> None:
    """Let an integer field be written as a numeric string too (pydantic's lax mode), typed by a pattern."""
    if prop.get("type") == "integer":
        prop["anyOf"] = [{"type": "integer"}]
        del prop["type"]
    options = prop.get("anyOf")
    if options is None or not any(o.get("type") == "integer" for o in options):
        return
    if not any(o.get("type") == "string" for o in options):
        i = next(i for i, o in enumerate(options) if o.get("type") == "integer")
        options.insert(i + 1, {"type": "string", "pattern": INTEGER_STRING})


def _alternation(names) -> str:
    """A pattern that matches exactly these names (plain words: ECMA-262 regexes, as editors run them, take no
    escapes such as `\\-` outside a class)."""
    bad = [n for n in names if not re.fullmatch(r"[A-Za-z0-9_-]+", n)]
    assert not bad, bad
    return "^(" + "|".join(names) + ")$"


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":  # python -m disagg.schemas.dynamo_v0 > schemas/dynamo-v0.schema.json
    print(json_schema_text(), end="")
