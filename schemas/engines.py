"""From an engine's argument list to a `Worker`: settings under one name per meaning, its role, and the release
evidence its flags carry. One table per program family; every reader (scripts, manifests, Dynamo v0 sections)
ends here, so a block size is read the same way from `--block-size 16`, `--page-size 16` or `block-size: 16`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from . import knowledge, lightllm, pd_sidecar, router_args
from .cmdline import DYNAMO_MULTIMODAL_VLLM, Arg, Command, flag_name
from .components import component_role, multimodal_worker_settings
from .kv_config import connectors, json_object
from .model import Setting, Unknown, Worker
from .source import Span

# program -> (engine, system)
PROGRAMS = {
    "vllm": ("vllm", "vllm"),
    "dynamo.vllm": ("vllm", "dynamo"),
    "sglang": ("sglang", "sglang"),
    "dynamo.sglang": ("sglang", "dynamo"),
    "dynamo.trtllm": ("trtllm", "dynamo"),
    DYNAMO_MULTIMODAL_VLLM: ("vllm", "dynamo"),  # Dynamo 0.4-0.5's examples/multimodal/components/worker.py (components.py)
    "trtllm-serve": ("trtllm", "trtllm"),
    "dynamo-v0:vllm": ("vllm", "dynamo"),
    "dynamo-v0:sglang": ("sglang", "dynamo"),
    "dynamo-v0:trtllm": ("trtllm", "dynamo"),
    "dynamo.frontend": (None, "dynamo"),
    "dynamo.router": (None, "dynamo"),
    "dynamo-v0:frontend": (None, "dynamo"),
    "sglang-router": (None, "sglang"),
    "vllm-router": (None, "production-stack"),
    "vllm-proxy": (None, "vllm"),
    "trtllm-disagg-server": (None, "trtllm"),
    "llm-d-routing-sidecar": (None, "llm-d"),
    "image-entrypoint": (None, "unknown"),
    "dynamo-serve": (None, "dynamo"),  # `dynamo serve graph:Service` (Dynamo 0.1-0.3 SDK): what runs is in the graph's code
    "lightllm": ("lightllm", "lightllm"),  # `python -m lightllm.server.api_server`; a pd_master serves no model (lightllm.py)
}

# setting -> flags that set it, in order of preference (first found wins)
_FLAGS: dict[str, tuple[str, ...]] = {
    "model": ("model", "model-path", "model-name"),
    "served_model_name": ("served-model-name",),
    "tp": ("tensor-parallel-size", "tp-size", "tp"),
    "pp": ("pipeline-parallel-size", "pp-size", "pp"),
    "dp": ("data-parallel-size", "dp-size", "dp"),
    "block_size": ("block-size", "page-size"),
    "dtype": ("dtype",),
    "kv_cache_dtype": ("kv-cache-dtype",),
    "disaggregation_mode": ("disaggregation-mode",),
    "transfer_backend": ("disaggregation-transfer-backend",),
    "bootstrap_port": ("disaggregation-bootstrap-port",),
    "port": ("port", "http-port"),
    "connector": ("connector",),
    "namespace": ("namespace",),
    "max_model_len": ("max-model-len", "context-length"),
    "remote_prefill": ("remote-prefill",),
    "conditional_disagg": ("conditional-disagg",),
    "max_local_prefill_length": ("max-local-prefill-length",),
    "max_prefill_queue_size": ("max-prefill-queue-size",),
    "enable_prefix_caching": ("enable-prefix-caching",),
    "enable_chunked_prefill": ("enable-chunked-prefill",),
    "enforce_eager": ("enforce-eager",),
    "router_mode": ("router-mode", "router"),
    # `engine_args`: the LLM API YAML (tensor_parallel_size and the rest) of Dynamo v0's TensorRT-LLM workers, a required
    # path their parse_tensorrt_llm_args reads ("--engine_args ... Path to the engine args file", then _init_engine_args;
    # ai-dynamo/dynamo examples/tensorrt_llm/common/parser.py before it took --extra-engine-args, as at 0921c0db917e)
    "extra_engine_args": ("extra-engine-args", "extra-llm-api-options", "config", "engine-args"),
}

_SETTING_OF_FLAG = {flag: setting for setting, flags in reversed(_FLAGS.items()) for flag in flags}
# flag -> (setting's place in _FLAGS, the flag's place among its names, setting): apply_command looks up the few
# flags a command has instead of every name of every setting
def _flag_places() -> dict[str, list[tuple[int, int, str]]]:
    out: dict[str, list[tuple[int, int, str]]] = {}
    for k, (setting, names) in enumerate(_FLAGS.items()):
        for n, flag in enumerate(names):
            out.setdefault(flag, []).append((k, n, setting))
    return out


_FLAG_PLACES = _flag_places()


def setting_of(key: str) -> str:
    """The setting a config key or flag fills (`tensor-parallel-size`, `--tp`, `tensor_parallel_size` -> `tp`), else the
    flag's own name in snake_case (`enable-chunked-prefill` -> `enable_chunked_prefill`)."""
    flag = flag_name(key)
    return _SETTING_OF_FLAG.get(flag, flag.replace("-", "_"))


# Flags whose presence narrows the Dynamo release (verified ranges from the generated table).
_MARKERS = {
    "dynamo.vllm": ("is-prefill-worker", "is-decode-worker", "disaggregation-mode", "connector"),
    "dynamo.frontend": ("enforce-disagg", "decode-fallback"),
}

# dynamo.trtllm parses its command line with argparse's parse_args, which exits on a flag it does not define, up to 0.9.1
# (ai-dynamo wheels 0.4.0, 0.5.1, 0.6.1, 0.7.0, 0.8.1, 0.9.1: dynamo/trtllm/utils/trtllm_utils.py cmd_line_args
# `parser.parse_args()`); from 1.0.0 it takes parse_known_args' leftovers (1.2.1 dynamo/trtllm/args.py). So a flag a
# release up to 0.9.1 does not define rules that release out; later releases are kept whatever the flag.
_TRTLLM_STRICT_UNTIL = "0.9.1"

ENV_SETTINGS = {
    "VLLM_NIXL_SIDE_CHANNEL_PORT": "side_channel_port",
    "VLLM_NIXL_SIDE_CHANNEL_HOST": "side_channel_host",
    "UCX_TLS": "ucx_tls",
    "DYN_NAMESPACE": "namespace",
    "DYNAMO_NAMESPACE": "namespace",
    "DYN_VLLM_DISAGGREGATION_MODE": "disaggregation_mode",
    "DYN_ROUTER_MODE": "router_mode",
    "CUDA_VISIBLE_DEVICES": "visible_devices",  # the GPUs the process can see (DG302)
}

_VAR = re.compile(r"\$\{?[A-Za-z_0-9@*#?!$-]|\$\(|`")


def unresolved(text: str) -> bool:
    """True for a value a shell or Kubernetes fills in at run time (`$MODEL`, `${X}`, `$(POD_IP)`)."""
    return bool(_VAR.search(text))


def _value(arg: Arg) -> Any:
    return Unknown.set_at_run_time(arg.text) if unresolved(arg.text) else arg.text


def apply_command(w: Worker, cmd: Command) -> None:
    """Fill a worker from its command line: flags as written, settings by meaning, KV config, role, evidence."""
    for name, arg in cmd.flags.items():
        w.flags[name] = Setting(_value(arg), cmd.flag_spans.get(name, arg.span), f"--{name}")
    # per setting, in _FLAGS order, the first of its names the command has
    first: dict[int, tuple[int, str, str]] = {}
    for name in cmd.flags:
        for k, n, key in _FLAG_PLACES.get(name, ()):
            if k not in first or n < first[k][0]:
                first[k] = (n, key, name)
    for k in sorted(first):
        _, key, name = first[k]
        arg = cmd.flags[name]
        w.settings[key] = Setting(_value(arg), arg.span, f"--{name}")
    if "model" not in w.settings and cmd.program == "vllm" and cmd.positional:
        arg = cmd.positional[0]
        w.settings["model"] = Setting(_value(arg), arg.span, "positional model")
    if "model" not in w.settings and _sglang_serve_model(cmd):
        # `sglang serve MODEL`: serve.py turns a first word that is no flag into --model-path (bytedance-iaas/sglang@6ed5780c4fd3
        # python/sglang/cli/serve.py:49-53,101-104)
        arg = cmd.args[2]
        w.settings["model"] = Setting(_value(arg), arg.span, "positional model")
    if cmd.program == "lightllm":
        lightllm.apply(w, cmd)
    for name in ("no-enable-prefix-caching", "no-enable-chunked-prefill"):
        if name in cmd.flags:
            w.settings[setting_of(name[3:])] = Setting(False, cmd.flag_spans.get(name), f"--{name}")
    if cmd.program == pd_sidecar.PROGRAM:
        pd_sidecar.apply(w, cmd)
    else:
        _kv_config(w, cmd)
    if cmd.program == DYNAMO_MULTIMODAL_VLLM:
        multimodal_worker_settings(w, cmd)
    model_word = cmd.positional[:1] if w.settings.get("model") is not None and w.settings["model"].origin == "positional model" else []
    opaque = [a for a in cmd.positional if a not in model_word and unresolved(a.text)]
    # a flag whose name is filled in at run time (`ARGS+=("--$key" "$value")` in a loop reading a mounted file) can be
    # any flag: what the file does not show is as unknown as after `$EXTRA_ARGS`
    named = [Arg(f"--{n}", cmd.flag_spans.get(n)) for n in cmd.flags if unresolved(n)]
    if opaque or named:  # `$EXTRA_ARGS`, `"$@"`: flags the file does not show (a role flag among them, perhaps)
        first = (opaque or named)[0]
        w.settings["opaque_args"] = Setting(Unknown.set_at_run_time(first.text), first.span, "arguments set at run time")
    if cmd.program == "sglang-router":
        router_args.router_urls(w, cmd)
        router_args.router_selectors(w, cmd)
    if cmd.program == "vllm-proxy":
        router_args.proxy_port_lists(w, cmd)
    if cmd.program == "vllm-router":
        router_args.model_label_routing(w, cmd)
    if cmd.program == "dynamo.vllm" and "connector" in cmd.flags:
        _connector_list(w, cmd)
    if cmd.program == "trtllm-disagg-server":
        # `trtllm-serve disaggregated -c/--config_file FILE` (TensorRT-LLM commands/serve.py, the disaggregated command)
        for j, a in enumerate(cmd.args[:-1]):
            if a.text in ("-c", "--config_file", "--config-file"):
                value = cmd.args[j + 1]
                w.settings["config_file"] = Setting(_value(value), value.span, a.text)
            elif a.text in ("-m", "--metadata_server_config_file", "--metadata-server-config-file"):
                # servers register in the metadata server (etcd) and the router takes them from there
                value = cmd.args[j + 1]
                w.settings["metadata_server"] = Setting(_value(value), value.span, a.text)
    for system_program, markers in _MARKERS.items():
        if w.program == system_program:
            for m in markers:
                if m in cmd.flags:
                    knowledge.evidence_from_flag(w.target, "dynamo", w.program, f"--{m}")
    if cmd.program == "dynamo.trtllm":
        for name in cmd.flags:
            knowledge.evidence_from_strict_flag(w.target, "dynamo", w.program, f"--{name}", _TRTLLM_STRICT_UNTIL)


def _sglang_serve_model(cmd: Command) -> bool:
    words = cmd.args
    return cmd.program == "sglang" and len(words) > 2 and words[0].text.rsplit("/", 1)[-1] == "sglang" and words[1].text == "serve" \
        and not words[2].text.startswith("-")


def _connector_list(w: Worker, cmd: Command) -> None:
    """dynamo.vllm's `--connector nixl lmcache kvbm ...` takes every word up to the next flag (`nargs="*"`, in the
    releases that read it: ai-dynamo/dynamo components/backends/vllm/src/dynamo/vllm/args.py at v0.5.0,
    components/src/dynamo/vllm/args.py at 9bb1af337 (0.6.1) and 7436e3bc0 (0.8.0)): all of them, space-separated,
    under `connector` (the flag parser keeps only the first word)."""
    first = cmd.flags["connector"]
    at = next((i for i, a in enumerate(cmd.args) if a is first), None)
    if at is None:  # `--connector=NAME`: one word
        return
    words = [first]
    for a in cmd.args[at + 1 :]:
        if a.text.startswith("-"):
            break
        words.append(a)
    if len(words) > 1:
        last = words[-1].span
        span = Span(first.span.line, first.span.column, last.end_line, last.end_column)
        text = " ".join(a.text for a in words)
        w.settings["connector"] = Setting(_value(Arg(text, span)), span, "--connector")


def apply_env(w: Worker, env: dict[str, Setting]) -> None:
    for key, s in env.items():
        w.env[key] = s
        if key in ENV_SETTINGS and ENV_SETTINGS[key] not in w.settings:
            value = s.value
            if isinstance(value, str) and unresolved(value):
                value = Unknown.set_at_run_time(value, f"{key}={value}")
            w.settings[ENV_SETTINGS[key]] = Setting(value, s.span, f"env {key}")


# the top-level keys of a kv-transfer-config read as settings of their own
_KV_KEYS = ("kv_connector", "kv_role", "kv_load_failure_policy", "kv_buffer_device", "kv_parallel_size", "kv_rank", "kv_ip", "kv_port")


def _kv_config(w: Worker, cmd: Command) -> None:
    """`--kv-transfer-config` JSON (or vLLM V0's --kv-connector/--kv-role flags) into kv_* settings."""
    arg = cmd.flags.get("kv-transfer-config")
    if arg is not None:
        text = arg.text
        if unresolved(text):
            w.settings["kv_config"] = Setting(Unknown.set_at_run_time(text), arg.span, "--kv-transfer-config")
            w.settings["kv_connector"] = Setting(Unknown("the kv-transfer-config is set at run time"), arg.span, "--kv-transfer-config")
            _written_keys(w, arg)
            return
        obj, err, spans = json_object(arg)
        if err:
            w.settings["kv_config"] = Setting(Unknown(err), arg.span, "--kv-transfer-config")
            w.settings["kv_config_error"] = Setting(err, arg.span, "--kv-transfer-config")
            return
        w.settings["kv_config"] = Setting(obj, arg.span, "--kv-transfer-config")
        for key in _KV_KEYS:
            if key in obj:
                w.settings[key] = Setting(obj[key], spans.get(key, arg.span), f"kv-transfer-config {key}")
        return
    for key in ("kv_connector", "kv_role", "kv_parallel_size", "kv_rank", "kv_ip", "kv_port"):
        flag = key.replace("_", "-")
        if flag in cmd.flags:
            a = cmd.flags[flag]
            w.settings[key] = Setting(_value(a), a.span, f"--{flag}")


KV_CONNECTORS = "kv_connectors_written"  # the connectors of a kv-transfer-config with parts set at run time elsewhere


def _written_keys(w: Worker, arg: Arg) -> None:
    """A `--kv-transfer-config` whose run-time parts all sit inside JSON strings (`"kv_ip":"$(hostname -I)"`) is still
    an object of known keys: each top-level key whose value holds no run-time part is known (`kv_role`, `kv_port`),
    the others stay set at run time. The object as a whole stays unknown (a value may carry anything)."""
    obj, err, spans = json_object(arg)
    if err:
        return
    extra = obj.get("kv_connector_extra_config")
    deciding = (obj.get("kv_connector"), obj.get("kv_connector_module_path"), extra.get("connectors") if isinstance(extra, dict) else None)
    if not unresolved(json.dumps(deciding)):  # which connectors run is written, whatever else is set at run time
        w.settings[KV_CONNECTORS] = Setting(frozenset(connectors(obj)), arg.span, "--kv-transfer-config connector fields")
    for key in _KV_KEYS:
        if key in obj and not isinstance(obj[key], (dict, list)):
            value = obj[key]
            span = spans.get(key, arg.span)
            if isinstance(value, str):
                # where the value itself was written: a function's `"kv_role":"${role}"` takes it from its caller
                m = re.compile(r'"' + re.escape(key) + r'"\s*:\s*"').search(arg.text)
                span = arg.pos_of(m.end(), len(value)) if m and value else span
                if unresolved(value):
                    value = Unknown.set_at_run_time(value, f"{key} {value}")
            w.settings[key] = Setting(value, span, f"kv-transfer-config {key}")


def infer_role(w: Worker, hints: list[str]) -> None:
    """Role from what the command says first (its flags, then its connector's role), then from the words around it,
    nearest first; `role_why` says which, `role_from` what kind of evidence it is (a name is only a guess)."""
    if w.program in ("dynamo.frontend", "dynamo-v0:frontend"):
        w.set_role("frontend", w.program, "program")
        return
    if w.program in ("sglang-router", "vllm-proxy", "llm-d-routing-sidecar", "trtllm-disagg-server", "dynamo.router", "vllm-router"):
        w.set_role("router" if w.program != "vllm-proxy" else "proxy", w.program, "program")
        return
    if w.program == "dynamo-serve":  # the graph's code and its config decide what runs, in which role: never a name near it
        w.set_role("unknown", "`dynamo serve`: the graph's code decides", "none")
        return
    _record_name(w, hints)
    if w.program == "lightllm":
        lightllm.infer_role(w)
        return
    if component_role(w):
        return
    mode = w.known("disaggregation_mode")
    origin = w.settings["disaggregation_mode"].origin if "disaggregation_mode" in w.settings else ""
    how = origin if origin.startswith("env") else "--disaggregation-mode"
    if isinstance(mode, str) and mode.lower() in ("prefill", "decode", "encode"):
        w.set_role(mode.lower(), f"{how} {mode}", "flag")
        return
    if isinstance(mode, str) and mode.lower() in ("agg", "aggregated", "null"):
        w.set_role("aggregated", f"{how} {mode}", "flag")
        return
    for flag, role in (("is-prefill-worker", "prefill"), ("is-decode-worker", "decode")):
        if flag in w.flags:
            w.set_role(role, f"--{flag}", "flag")
            return
    server_role = w.flags["server-role"].value if w.program == "trtllm-serve" and "server-role" in w.flags else None
    if isinstance(server_role, str) and server_role.upper() in _TRTLLM_SERVER_ROLES:
        # trtllm-serve `--server_role`: the role the server registers with (`ServerRole[server_role.upper()]`:
        # CONTEXT, GENERATION; NVIDIA/TensorRT-LLM tensorrt_llm/commands/serve.py at 00209af149e7774406881a37283dce303571eb11,
        # ServerRole in tensorrt_llm/llmapi/disagg_utils.py)
        w.set_role(_TRTLLM_SERVER_ROLES[server_role.upper()], f"--server_role {server_role}", "flag")
        return
    kv_role = str(w.known("kv_role", "")).lower()
    if kv_role in ("kv_producer", "kv_consumer"):
        w.set_role("prefill" if kv_role == "kv_producer" else "decode", f"kv_role {kv_role}", "connector")
        return
    for hint in hints:
        found = role_from_words(hint)
        if found:
            w.set_role(found, f"named {found} nearby ({hint.strip()[:60]!r})", "name")
            return
    if w.settings.get("kv_connector") is not None or w.program in ("dynamo.vllm", "dynamo.sglang", "dynamo.trtllm"):
        w.set_role("unknown", "no role in the command or around it", "none")
        return
    w.set_role("aggregated", "no KV connector and no role", "default")


_TRTLLM_SERVER_ROLES = {"CONTEXT": "prefill", "GENERATION": "decode"}


def _record_name(w: Worker, hints: list[str]) -> None:
    """What the names around a worker say it is (`named_as`), kept even when its flags decide otherwise: a name that
    contradicts the flags is itself worth saying (DG107)."""
    for hint in hints:
        found = role_from_words(hint)
        if found:
            w.settings["named_as"] = Setting(found, None, f"named {found} nearby ({hint.strip()[:60]!r})")
            return


# TensorRT-LLM says context (ctx) and generation (gen) for prefill and decode.
_PREFILL = re.compile(r"prefill|prefiller|\bproducer\b|(?:^|[\s_/-])p(?:\d+)?(?:[\s_/.-]|$)|\bcontext\b|(?:^|[\s_/-])ctx(?:[\s_/.-]|$)", re.I)
_DECODE = re.compile(r"decode|decoder|\bconsumer\b|(?:^|[\s_/-])d(?:\d+)?(?:[\s_/.-]|$)|\bgeneration\b|(?:^|[\s_/-])gen(?:[\s_/.-]|$)", re.I)


def role_from_words(text: str) -> str | None:
    """prefill or decode when the words say one of them and not the other."""
    p, d = bool(_PREFILL.search(text)), bool(_DECODE.search(text))
    if p and not d:
        return "prefill"
    if d and not p:
        return "decode"
    return None


def as_int(value: Any) -> int | None:
    if value is None or isinstance(value, (Unknown, bool)):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None
