"""Validate YAML values against the checked-in JSON Schema, coercing as pydantic's lax mode does.

The doctor's static path runs on every pre-commit; importing pydantic and building the models costs more than the
whole lint of a file. The schema file is generated from the pydantic models (`dynamo_v0.py`), and a property test
holds this validator to the same answers, so the models stay the single definition.
"""

from __future__ import annotations

import json
import math
import os
import re
from functools import lru_cache
from typing import Any

SCHEMA_FILE = os.path.join(os.path.dirname(__file__), "dynamo-v0.schema.json")

_INT = re.compile(r"[+-]?[0-9]+(?:_[0-9]+)*(?:\.0*)?")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:_[0-9]+)*(?:\.(?:[0-9]+(?:_[0-9]+)*)?)?|\.[0-9]+(?:_[0-9]+)*)(?:[eE][+-]?[0-9]+)?")
_SPECIAL_FLOATS = {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf, "infinity": math.inf, "+infinity": math.inf, "-infinity": -math.inf, "nan": math.nan, "+nan": math.nan, "-nan": math.nan}


class Invalid(Exception):
    def __init__(self, loc: tuple[Any, ...], expected: str, got: Any):
        super().__init__(f"{loc}: expected {expected}")
        self.loc = loc
        self.expected = expected
        self.got = got


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    with open(SCHEMA_FILE, encoding="utf-8") as handle:
        return json.load(handle)


class Values:
    """Typed values of one section (or nested object), readable by Python name; unset fields hold their default."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]):
        object.__setattr__(self, "_data", data)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        return f"Values({self._data!r})"


def python_name(alias: str) -> str:
    return "service_args" if alias == "ServiceArgs" else alias.replace("-", "_")


def resolve_ref(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref:
        return schema["$defs"][ref.rsplit("/", 1)[-1]]
    return node


def section_schema(section: str) -> dict[str, Any]:
    schema = load_schema()
    prop = schema["properties"][section]
    for option in prop.get("anyOf", [prop]):
        if "$ref" in option:
            return resolve_ref(schema, option)
    raise KeyError(section)


def validate_object(obj_schema: dict[str, Any], data: dict[str, Any], loc: tuple[Any, ...] = ()) -> tuple[Values, list[Invalid]]:
    """Values for every declared property (defaults where unset or invalid) and the errors found."""
    schema = load_schema()
    out: dict[str, Any] = {}
    errors: list[Invalid] = []
    for alias, prop in obj_schema.get("properties", {}).items():
        name = python_name(alias)
        if alias in data:
            try:
                out[name] = _value(schema, prop, data[alias], loc + (alias,))
                continue
            except Invalid as exc:
                errors.append(exc)
            except _Nested as nested:
                out[name] = nested.values
                errors.extend(nested.errors)
                continue
        out[name] = _default(schema, prop)
    return Values(out), errors


class _Nested(Exception):
    def __init__(self, values: Values, errors: list[Invalid]):
        self.values = values
        self.errors = errors


def _default(schema: dict[str, Any], prop: dict[str, Any]) -> Any:
    if "default" in prop:
        return prop["default"]
    target = resolve_ref(schema, prop)
    if target.get("type") == "object" and "properties" in target:
        return validate_object(target, {})[0]
    return None


def _value(schema: dict[str, Any], prop: dict[str, Any], value: Any, loc: tuple[Any, ...]) -> Any:
    options = prop.get("anyOf", [prop])
    # pydantic's smart unions take an exact type match before a coercion. A string typed by a pattern is how the
    # schema tells editors about a coercion (`gpu: "4"` is a whole number): it is never the value's type here, the
    # coercion of the option before it is.
    for strict in (True, False):
        for option in options:
            if option.get("type") == "string" and "pattern" in option:
                continue
            try:
                return _check(schema, option, value, loc, strict)
            except Invalid:
                continue
    raise Invalid(loc, _describe(schema, options), value)


def _describe(schema: dict[str, Any], options: list[dict[str, Any]]) -> str:
    names = []
    for o in options:
        o = resolve_ref(schema, o)
        if "pattern" in o:
            continue
        if "enum" in o:
            names.append(" or ".join(repr(v) for v in o["enum"]))
            continue
        names.append({"boolean": "true or false (unquoted)", "integer": "a whole number", "number": "a number", "string": "a string", "array": "a list", "object": "a mapping", "null": None}.get(o.get("type", ""), "a valid value"))
    return " or ".join(n for n in names if n) or "a valid value"


def _check(schema: dict[str, Any], option: dict[str, Any], value: Any, loc: tuple[Any, ...], strict: bool) -> Any:
    option = resolve_ref(schema, option)
    kind = option.get("type")
    if kind is None and not ({"enum", "const", "anyOf", "properties"} & option.keys()):
        return value  # an empty schema (`list[Any]`'s items) takes anything, as pydantic's `Any` does
    if "enum" in option or "const" in option:
        allowed = option.get("enum", [option.get("const")])
        if value in allowed and isinstance(value, str):
            return value
        raise Invalid(loc, "one of " + ", ".join(repr(v) for v in allowed), value)
    if kind == "null":
        if value is None:
            return None
    elif kind == "boolean":
        if isinstance(value, bool):
            return value
    elif kind == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if not strict:
            if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:  # pydantic: i64 range
                return int(value)
            if isinstance(value, str) and _INT.fullmatch(value.strip()):
                return int(value.strip().split(".")[0].replace("_", ""))
    elif kind == "number":
        if isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)):
            return float(value) if strict or isinstance(value, float) else float(value)
        if not strict and isinstance(value, str):
            text = value.strip()
            if text.lower() in _SPECIAL_FLOATS:
                return _SPECIAL_FLOATS[text.lower()]
            if _FLOAT.fullmatch(text):
                return float(text.replace("_", ""))
    elif kind == "string":
        if isinstance(value, str):
            return value
    elif kind == "array":
        if isinstance(value, list):
            return [_value(schema, option.get("items", {}), item, loc + (i,)) for i, item in enumerate(value)]
    elif kind == "object":
        if isinstance(value, dict):
            if "properties" in option:
                values, errors = validate_object(option, value, loc)
                if errors:
                    raise _Nested(values, errors)
                return values
            return value
    raise Invalid(loc, _describe(schema, [option]), value)
