"""A `--kv-transfer-config` as vLLM reads it: the JSON object with where each key sits in the argument, and the
connectors it names (vLLM's `KVConnectorFactory` loads `kv_connector` by registered name or, with
`kv_connector_module_path`, from that module; wrappers list the connectors they run)."""

from __future__ import annotations

import functools
import json
import re
from typing import Any, NamedTuple

from .cmdline import Arg
from .source import Span


def json_object(arg: Arg) -> tuple[dict | None, str | None, dict[str, Span]]:
    """(object, error, key -> span of the key inside the argument) of a JSON flag value."""
    try:
        obj = json.loads(arg.text)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON: {exc.msg} at character {exc.pos + 1}", {}
    if not isinstance(obj, dict):
        return None, "must be a JSON object", {}
    spans = {}
    for key in obj:
        m = _json_key(key).search(arg.text)
        if m:
            spans[key] = arg.pos_of(m.start() + 1, len(key))
    return obj, None, spans


@functools.lru_cache(maxsize=1024)
def _json_key(key: str) -> re.Pattern:
    """`"key":` in a JSON text (compiled once per key: every worker's kv-transfer-config asks the same few)."""
    return re.compile(r'"' + re.escape(key) + r'"\s*:')


def connectors(value: Any) -> set[str]:
    """Every connector a kv-transfer-config uses, nested ones included (PdConnector / MultiConnector wrap others)."""
    out: set[str] = set()
    if isinstance(value, dict):
        name = value.get("kv_connector")
        if isinstance(name, str):
            out.add(name)
        extra = value.get("kv_connector_extra_config")
        if isinstance(extra, dict):
            listed = extra.get("connectors")
            for entry in listed if isinstance(listed, list) else []:
                out |= connectors(entry)
    return out


class ConnectorUse(NamedTuple):
    """One connector a kv-transfer-config names, as vLLM's factory reads it: `kv_connector` is a registered name,
    or, with `kv_connector_module_path`, a class in that module; a wrapper (MultiConnector, Dynamo's PdConnector)
    lists the connectors it runs in `kv_connector_extra_config.connectors`."""

    name: str
    module_path: str | None
    extra: dict
    children: tuple["ConnectorUse", ...]


def connector_uses(value: Any) -> list[ConnectorUse]:
    """The connector of a kv-transfer-config object with the ones it wraps ([] when it names none)."""
    if not isinstance(value, dict) or not isinstance(value.get("kv_connector"), str):
        return []
    extra = value.get("kv_connector_extra_config") if isinstance(value.get("kv_connector_extra_config"), dict) else {}
    listed = extra.get("connectors")
    children = tuple(u for entry in (listed if isinstance(listed, list) else []) for u in connector_uses(entry))
    module = value.get("kv_connector_module_path")
    return [ConnectorUse(value["kv_connector"], module if isinstance(module, str) and module else None, extra, children)]
