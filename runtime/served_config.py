"""What `/config` serves: an allow-list of the settings the runtime uses, never the file's text or its path.

The live doctor lints what runs (`disagg doctor --live URL` reads `/config`), so the allow-listed settings are also
served as YAML text; each kept key stays on the line where the file has it, so a finding's `line:column` points into
the user's file. Everything else is left out, whatever it looks like: unknown keys, `envs`, flow mappings, block
scalars, lists. Kept string values lose what may be a credential (a URL's user:password, a `Bearer` value, a value
shaped like an API token), and `kv-transfer-config` keeps only its connector fields.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from typing import Any

# Per section, the keys the runtime (or the doctor's static rules about what the runtime runs) reads.
_WORKER = ("model", "served-model-name", "block-size", "max-model-len", "remote-prefill", "conditional-disagg", "max-local-prefill-length",
           "max-prefill-queue-size", "kv-transfer-config", "tensor-parallel-size", "pipeline-parallel-size", "dtype", "kv-cache-dtype",
           "enable-prefix-caching", "enable-chunked-prefill", "max-num-batched-tokens", "router", "common-configs")
ALLOWED_KEYS = {
    "Common": _WORKER,
    "Frontend": ("served_model_name", "endpoint", "port"),
    "Processor": ("model", "served-model-name", "block-size", "max-model-len", "router", "common-configs"),
    "VllmWorker": _WORKER,
    "PrefillWorker": _WORKER,
}
SERVICE_ARGS = {"workers": (), "resources": ("gpu", "cpu", "memory")}
# vLLM's KVTransferConfig fields that say which connector runs and in which role (vllm/config/kv_transfer.py); its
# `kv_connector_extra_config` and addresses are left out.
KV_TRANSFER_FIELDS = ("kv_connector", "kv_role", "kv_buffer_device", "kv_parallel_size", "kv_rank")

_TOKEN = re.compile(r"^(bearer\s|basic\s)|^(hf_|sk-|ghp_|gho_|github_pat_|xox[abp]-|glpat-|AKIA)[A-Za-z0-9_-]{6,}", re.I)


def _safe_string(value: str) -> str | None:
    """The value, or None when it may carry a credential; a URL keeps everything but its user:password."""
    if "\n" in value or _TOKEN.search(value.strip()):
        return None
    if "://" in value:
        try:
            url = urllib.parse.urlsplit(value)
        except ValueError:
            return None
        if url.username is not None or url.password is not None:
            host = url.hostname or ""
            value = urllib.parse.urlunsplit((url.scheme, host + (f":{url.port}" if url.port else ""), url.path, "", ""))
        elif url.query:
            value = urllib.parse.urlunsplit((url.scheme, url.netloc, url.path, "", ""))  # query strings carry tokens
    return value


def _kv_transfer(value: Any) -> str | None:
    data = value
    if isinstance(value, str):
        try:
            data = json.loads(value)
        except ValueError:
            return "<not valid JSON: left out>"  # present, as in the file; its text may hold anything
    if not isinstance(data, dict):
        return "<not a mapping: left out>"
    kept = {k: data[k] for k in KV_TRANSFER_FIELDS if k in data and isinstance(data[k], (str, int, float, bool))}
    kept = {k: v for k, v in kept.items() if not isinstance(v, str) or _safe_string(v) is not None}
    return json.dumps(kept, separators=(",", ":"))


def _scalar(key: str, value: Any) -> Any:
    """The value as served, or None when it is left out."""
    if key == "kv-transfer-config":
        return _kv_transfer(value)
    if key == "common-configs":
        return [v for v in value if isinstance(v, str) and re.fullmatch(r"[\w.-]+", v)] if isinstance(value, list) else None
    if isinstance(value, bool) or isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        safe = _safe_string(value)
        return safe if safe is not None else "<redacted>"  # the key stays: rules that look for it see it set
    return None


def _kept(data: dict) -> list[tuple[tuple, Any]]:
    """(path, value) of every allow-listed setting in the document, sections as (name,) with value None."""
    out: list[tuple[tuple, Any]] = []
    for section, body in data.items():
        if section not in ALLOWED_KEYS or not isinstance(body, dict):
            continue
        out.append(((section,), None))
        for key, value in body.items():
            if key in ALLOWED_KEYS[section]:
                v = _scalar(key, value)
                if v is not None:
                    out.append(((section, key), v))
            elif key == "ServiceArgs" and isinstance(value, dict):
                out.append(((section, key), None))
                for sub, inner in SERVICE_ARGS.items():
                    if sub not in value:
                        continue
                    if not inner and isinstance(value[sub], (int, float)) and not isinstance(value[sub], bool):
                        out.append(((section, key, sub), value[sub]))
                    elif inner and isinstance(value[sub], dict):
                        out.append(((section, key, sub), None))
                        out += [((section, key, sub, k), v) for k, v in value[sub].items() if k in inner and isinstance(v, (int, float, str)) and not isinstance(v, bool)
                                and (not isinstance(v, str) or _safe_string(v) is not None)]
    return out


def _render(path: tuple, value: Any) -> str:
    key = path[-1]
    if value is None:
        return f"{key}:"
    return f"{key}: {json.dumps(value)}"  # JSON scalars and lists are YAML flow values


def served_text(doc) -> tuple[str, bool]:
    """The allow-listed settings as YAML; True when every kept key is on its line of the file (block style), else
    they are written one per line in order (a file in flow style)."""
    kept = _kept(doc.data if isinstance(doc.data, dict) else {})
    lines: dict[int, str] = {}
    in_place = True
    for path, value in kept:
        span = doc.marks.key(path)
        if span.line in lines or (lines and span.line < max(lines)):
            in_place = False
            break
        lines[span.line] = " " * (span.column - 1) + _render(path, value)
    if in_place:
        last = max(lines, default=0)
        return "".join(lines.get(n, "") + "\n" for n in range(1, last + 1)), True
    return "".join("  " * (len(path) - 1) + _render(path, value) + "\n" for path, value in kept), False


def served_config(plan, doc) -> dict:
    """The `/config` answer for a plan read from `doc`."""
    text, in_place = served_text(doc)
    p = plan
    return {
        "name": os.path.basename(p.config_path),
        "served_model_name": p.served_model_name,
        "model": _safe_string(p.model_path) if p.model_path else None,
        "block_size": p.block_size,
        "max_model_len": p.max_model_len,
        "policy": p.policy._asdict(),
        "router": p.router,
        "enable_prefix_caching": p.enable_prefix_caching,
        "workers": {"decode": p.decode_workers, "prefill": p.prefill_workers},
        "ports": {"frontend": p.frontend_port},
        "text": text,
        "lines": "as in the file" if in_place else "renumbered (the file is in flow style)",
    }
