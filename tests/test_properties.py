"""Property tests: generated and mutated configs never make the doctor raise; the fast validator agrees with pydantic."""

from __future__ import annotations

import math

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import EXAMPLES
from disagg.doctor.context import LintOptions
from disagg.doctor.engine import lint_text
from disagg.doctor.registry import default_registry
from disagg.doctor.workload import Request, Workload
from disagg.schemas.config import SECTION_NAMES, engine_keys
from disagg.schemas.source import ConfigError, decode_text

RULES = list(default_registry())
OPTIONS = LintOptions(gpus=4, workload=Workload("gen", (Request(200, 0.1), Request(5, 0.0))))

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 100_000), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "yes", "true", "10", "ten", "1.5", " 7 ", "0x10", "1_000", '{"kv_connector":"X"}', "{bad json", "m"]),
    st.text(max_size=12),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)
keys = st.one_of(st.sampled_from(sorted(engine_keys(True))), st.sampled_from(["remote_prefill", "ServiceArgs", "workers", "resources", "gpu", "envs"]), st.text(max_size=10))
service_args = st.fixed_dictionaries({}, optional={"workers": scalars, "resources": st.dictionaries(st.sampled_from(["gpu", "cpu", "memory", "gpus"]), scalars, max_size=3), "envs": values})
sections = st.dictionaries(keys, values, max_size=8).flatmap(lambda d: st.just(d) | service_args.map(lambda s: {**d, "ServiceArgs": s}))
configs = st.dictionaries(st.one_of(st.sampled_from(SECTION_NAMES), st.sampled_from(["VLLMWorker", "prefillworker"]), st.text(max_size=8)), st.one_of(sections, values), min_size=1, max_size=6)


def _lint(text: str, name: str = "gen.yaml"):
    result = lint_text(name, text, RULES, OPTIONS)
    for f in result.findings:
        assert f.line >= 1 and f.column >= 1 and f.message
    return result


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_generated_configs_never_raise(config):
    _lint(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))


MUTATION_CHARS = list(":[]{}-&*!|>'\"#,?\t\n %@`") + ["\x00", "\ufeff", "<<", "---"]


STACKS = EXAMPLES.parent / "tests" / "fixtures" / "stacks"


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(sorted(EXAMPLES.glob("*.yaml")) + sorted(STACKS.iterdir())), st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(["delete", "insert", "dup-line"]), st.sampled_from(MUTATION_CHARS)), min_size=1, max_size=6))
def test_mutated_configs_never_raise(path, mutations):
    text = path.read_text()
    for pos, kind, char in mutations:
        pos %= max(len(text), 1)
        if kind == "delete":
            text = text[:pos] + text[pos + 1 :]
        elif kind == "insert":
            text = text[:pos] + char + text[pos:]
        else:
            lines = text.splitlines(keepends=True)
            i = pos % max(len(lines), 1)
            text = "".join(lines[: i + 1] + lines[i : i + 1] + lines[i + 1 :])
    try:
        text = decode_text("gen.yaml", text.encode("utf-8", "surrogatepass"))
    except ConfigError:
        return
    _lint(text, "gen" + path.suffix)  # scripts stay scripts, manifests stay YAML


# The doctor validates against the JSON Schema (no pydantic import); the pydantic models are the definition.
# Both must accept the same values and coerce them to the same results.

typed_inputs = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False, width=32),
    st.sampled_from(["10", " 10 ", "1_000", "1.0", "+5", "-3", "1e3", "10.5", "ten", "yes", "true", "", "0x10", "inf", "0.95", "round-robin", "kv", "fp8"]),
    st.lists(st.sampled_from(["model", "block-size", 3]), max_size=3),
    st.dictionaries(st.sampled_from(["workers", "resources", "envs", "kv_connector"]), st.one_of(st.integers(0, 4), st.sampled_from(["2", "x"]), st.dictionaries(st.sampled_from(["gpu", "cpu"]), st.one_of(st.integers(0, 8), st.sampled_from(["1", "two"])), max_size=2)), max_size=3),
)


def _field_aliases(section):
    from disagg.schemas.dynamo_v0 import SECTION_MODELS

    model = SECTION_MODELS[section]
    return [(f.alias or n) for n, f in model.model_fields.items()]


def _plain(v):
    from disagg.schemas.typecheck import Values

    if isinstance(v, Values):
        return {k: _plain(x) for k, x in v._data.items()}
    if hasattr(v, "model_dump"):
        return {k: _plain(getattr(v, k)) for k in type(v).model_fields}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


SECTIONS_AND_FIELDS = [(s, a) for s in SECTION_NAMES for a in _field_aliases(s)]


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(SECTIONS_AND_FIELDS), typed_inputs)
def test_fast_validator_agrees_with_pydantic(section_and_field, value):
    from pydantic import ValidationError

    from disagg.schemas.dynamo_v0 import SECTION_MODELS
    from disagg.schemas.typecheck import section_schema, validate_object

    section, alias = section_and_field
    model = SECTION_MODELS[section]
    try:
        ref = model.model_validate({alias: value})
        ok = True
    except ValidationError:
        ok = False
    values, errors = validate_object(section_schema(section), {alias: value})
    assert ok == (not errors), (section, alias, value, errors)
    if ok:
        name = next(n for n, f in model.model_fields.items() if (f.alias or n) == alias)
        mine, theirs = _plain(getattr(values, name.replace("-", "_"))), _plain(getattr(ref, name))
        if isinstance(theirs, float) and math.isnan(theirs):
            assert math.isnan(mine)
        else:
            assert mine == theirs and type(mine) is type(theirs), (alias, value, mine, theirs)
