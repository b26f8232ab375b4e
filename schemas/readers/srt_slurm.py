"""NVIDIA srt-slurm recipes: the YAML `srtctl apply -f recipe.yaml` turns into Slurm jobs of Dynamo (or SGLang / vLLM /
TensorRT-LLM) prefill and decode workers. Recognised by the keys srtctl's schema requires, never by file name or
resemblance: a top-level `name`, `model` with `path`, `container` and `precision`, `resources` with `gpu_type`, and a
`backend` that is absent (SGLang) or names an engine backend by `type`.

Source: NVIDIA/srt-slurm at c88ef731636890ff6385a783e152c1790e15b194 (2026-08):
- src/srtctl/core/schema.py: SrtConfig (required `name`, `model`, `resources`), ModelConfig (`path`, `container`,
  `precision`), ResourceConfig (`gpu_type`, `gpus_per_node` default 4, `prefill_nodes`/`decode_nodes`,
  `prefill_workers`/`decode_workers`, `agg_nodes`/`agg_workers`, `gpus_per_prefill`/`gpus_per_decode`/`gpus_per_agg`;
  disaggregated when `prefill_nodes` or `decode_nodes` is set; `num_prefill` is `prefill_workers or 0`; GPUs per
  worker are the explicit `gpus_per_<role>`, else `<role>_nodes * gpus_per_node // <role>_workers`, else
  `gpus_per_node`), BackendConfigField (`backend.type`, default `sglang`; `trtllm`, `vllm`, `mocker`), FrontendConfig
  (`type`, default `dynamo`), DynamoConfig (`install`, `version`, `hash`, `top_of_tree`, `wheel`), `environment`
  (set on every worker after the role's own: src/srtctl/cli/mixins/worker_stage.py), sweeps (src/srtctl/core/sweep.py:
  `{param}` in any string is replaced per job).
- src/srtctl/core/topology.py allocate_endpoints: a worker needing more GPUs than a node has spans
  ceil(gpus / gpus_per_node) whole nodes; otherwise it gets its GPUs on one node (src/srtctl/cli/mixins/worker_stage.py
  sets CUDA_VISIBLE_DEVICES to them).
- src/srtctl/backends/sglang.py build_worker_command: `python3 -m dynamo.sglang` (`sglang.launch_server` when
  `frontend.type: sglang`) `--model-path ... --served-model-name NAME ... --disaggregation-mode <role>` then the
  role's `sglang_config.<role>` keys as flags (`_config_to_cli_args`: sorted by key, `_` -> `-`, `true` a bare flag,
  `false`/null nothing, a list the flag then each item, anything else `str(value)`); `model-path`,
  `served-model-name` and `nccl-port` are dropped from the section, and NAME is the first `served-model-name` of the
  prefill, aggregated, then decode section (get_served_model_name), the same for every role.
- src/srtctl/backends/vllm.py build_worker_command: `python3 -m dynamo.vllm --model ... --served-model-name NAME
  --disaggregation-mode <role> --kv-transfer-config <connector>` then the section's flags (same conversion; the
  section's own `served-model-name` and `kv-transfer-config` come later and win); the connector is the section's
  `connector`, else `backend.connector` (default `nixl`; `null` or "none" gives none), expanded by _CONNECTOR_MAP.
  `frontend.type: vllm` runs `vllm serve` for aggregated jobs only.
- src/srtctl/backends/trtllm.py build_worker_command: `python3 -m dynamo.trtllm --model-path ... --served-model-name
  <model dir> --disaggregation-mode <role> --extra-engine-args <the role's trtllm_config section as YAML>`
  (`trtllm-serve` when `frontend.type: trtllm_serve`, its role then given by the orchestrator's server lists).
"""

from __future__ import annotations

import bisect
import re
from typing import Any

from .. import knowledge
from ..cmdline import Arg, find_command, flag_name
from ..knowledge.versions import Target
from ..model import Deployment, Host, Setting, Unknown, Worker
from ..source import SourceDocument, Span
from .common import env_from_k8s, new_worker, scalar_offsets

SOURCE = "NVIDIA/srt-slurm@c88ef73"
_SECTIONS = {"sglang": "sglang_config", "vllm": "vllm_config", "trtllm": "trtllm_config"}
_MODES = (("prefill", "prefill"), ("decode", "decode"))
# vLLM's connector shorthands (src/srtctl/backends/vllm.py _CONNECTOR_MAP)
_VLLM_CONNECTORS = {
    "nixl": '{"kv_connector": "NixlConnector", "kv_role": "kv_both"}',
    "lmcache": '{"kv_connector": "LMCacheConnectorV1", "kv_role": "kv_both"}',
    "kvbm": '{"kv_connector": "DynamoConnector", "kv_connector_module_path": "kvbm.vllm_integration.connector", "kv_role": "kv_both"}',
}


def looks_like_recipe(data: Any) -> bool:
    if not isinstance(data, dict) or "kind" in data or not isinstance(data.get("name"), str):
        return False
    model, resources, backend = data.get("model"), data.get("resources"), data.get("backend")
    if not isinstance(model, dict) or not all(k in model for k in ("path", "container", "precision")):
        return False
    if not isinstance(resources, dict) or "gpu_type" not in resources:
        return False
    return backend is None or (isinstance(backend, dict) and isinstance(backend.get("type", "sglang"), str)
                               and backend.get("type", "sglang") in _SECTIONS)


def read(doc: SourceDocument, dep: Deployment, target: Target) -> None:
    data = doc.data
    dep.format = "srt-slurm"
    backend = data.get("backend") if isinstance(data.get("backend"), dict) else {}
    engine = str(backend.get("type", "sglang"))
    frontend = data.get("frontend") if isinstance(data.get("frontend"), dict) else {}
    ftype = str(frontend.get("type", "dynamo"))
    res = data["resources"]
    disagg = res.get("prefill_nodes") is not None or res.get("decode_nodes") is not None
    sweep = data.get("sweep") if isinstance(data.get("sweep"), dict) else {}
    target = _release_evidence(data, ftype, target)
    section_key = _SECTIONS[engine]
    sections = backend.get(section_key) if isinstance(backend.get(section_key), dict) else {}
    modes = _MODES if disagg else (("aggregated", "agg"),)
    for key, mode in modes:
        program = _program(engine, ftype, mode)
        if program is None:
            continue
        section = sections.get(key) if isinstance(sections.get(key), dict) else {}
        if not _mentions(res, backend, sections, key, mode):
            continue  # a role the recipe says nothing of (srtctl starts none of it: `<role>_workers or 0`)
        base = ("backend", section_key, key)
        at = Span(*doc.marks.key(base)) if section else Span(*doc.marks.key(("resources",)))
        words = _command(doc, data, backend, sections, engine, program, key, mode, section, base, at, sweep)
        cmd = find_command(words)
        if cmd is None:
            continue
        env = env_from_k8s(doc, ("backend", f"{key}_environment"), backend.get(f"{key}_environment"))
        env.update(env_from_k8s(doc, ("environment",), data.get("environment")))
        role = "agg" if mode == "agg" else key
        host = Host("unknown", f"{role} nodes", f"srt-slurm:{doc.path}:{role}")  # Slurm picks the nodes
        w = new_worker(cmd, path=doc.path, name=f"{key} worker", host=host, hints=[], env=env, target=target)
        if engine == "trtllm":
            from .trtllm import apply_engine_config

            # srtctl writes the section to /logs/trtllm_config_<mode>.yaml and passes it as --extra-engine-args: the
            # engine config is this section, in this file (an empty one where the recipe has none)
            apply_engine_config(w, doc, base, section)
            w.settings["extra_engine_args"] = Setting(section, at, f"backend.trtllm_config.{key} (srtctl's --extra-engine-args)")
        _resources(doc, w, res, key if mode != "agg" else "agg")
        if mode != "agg" and engine == "vllm" and "disaggregation_mode" not in w.settings and w.engine is not None:
            # srtctl gives dynamo.vllm its role with `--disaggregation-mode <role>` from srt-slurm 50c91ba9 (2026-03,
            # for Dynamo 1.0), with `--is-prefill-worker` / `--is-decode-worker` before: the role is the flag's, its
            # spelling depends on the srtctl release, which the recipe does not name, so no flag is written here
            w.settings["disaggregation_mode"] = Setting(key, at, f"srtctl's role flag for its {key} workers")
            w.set_role(key, f"srtctl's role flag for its {key} workers (--disaggregation-mode {key}, or --is-{key}-worker "
                       "before srt-slurm 50c91ba9)", "flag")
        if mode != "agg" and program[0] == "trtllm-serve" and w.is_engine:
            # no role flag: the orchestrator's ser.yaml lists prefill endpoints as context_servers and decode ones as
            # generation_servers (src/srtctl/frontends/trtllm_serve.py _build_ser)
            servers = "context_servers" if key == "prefill" else "generation_servers"
            w.set_role(key, f"srtctl lists it in the orchestrator's {servers}", "field")
        if mode != "agg" and program[-1] == "sglang.launch_server" and w.is_engine:
            # frontend.type sglang: srtctl runs `sglang_router.launch_router --pd-disaggregation` with every prefill
            # leader as a --prefill URL and every decode leader as a --decode URL (src/srtctl/frontends/sglang.py)
            from ..roles import _route

            why = f"srtctl's sglang_router (--pd-disaggregation, its --{key} URL)"
            _route(w, key, why, Setting(key, Span(*doc.marks.value(("frontend", "type"))), why))
        if mode != "agg":
            # srtctl starts it as a worker of this role (its own --disaggregation-mode first); a mode the section
            # sets comes later on the command line and wins, and the role it was started for stays known (DG107)
            w.settings["launched_as"] = Setting(key, at, f"srtctl starts it as a {key} worker, from backend.{section_key}.{key}")
        if mode == "agg" and w.is_engine and w.role_from in ("name", "none", "default"):
            w.set_role("aggregated", "resources.agg_* (srtctl starts it with no --disaggregation-mode)", "field")
        if sweep:
            w.notes.append(f"a sweep: {{param}} values ({', '.join(map(str, sweep))}) are set per job, not read")
        dep.workers.append(w)


def _mentions(res: dict, backend: dict, sections: dict, key: str, mode: str) -> bool:
    role = "agg" if mode == "agg" else key
    return key in sections or f"{key}_environment" in backend or any(f"{role}_{k}" in res for k in ("nodes", "workers")) \
        or f"gpus_per_{role}" in res


def _program(engine: str, ftype: str, mode: str) -> list[str] | None:
    """The words that start a worker of `mode` (backends/*.py build_worker_command), or None where srtctl starts none."""
    if engine == "sglang":
        return ["python3", "-m", "sglang.launch_server" if ftype == "sglang" else "dynamo.sglang"]
    if engine == "vllm":
        if ftype == "vllm":
            return ["vllm", "serve"] if mode == "agg" else None  # srtctl refuses a disaggregated job with frontend.type vllm
        return ["python3", "-m", "dynamo.vllm"]
    if ftype == "trtllm_serve":
        return ["trtllm-serve"]
    return ["python3", "-m", "dynamo.trtllm"]


def _command(doc: SourceDocument, data: dict, backend: dict, sections: dict, engine: str, program: list[str], key: str, mode: str,
             section: dict, base: tuple, at: Span, sweep: dict) -> list[Arg]:
    """The worker's command line as srtctl builds it, every word positioned at the recipe key or value it comes from."""
    model = Arg(str(data["model"]["path"]), Span(*doc.marks.value(("model", "path"))))
    words = [Arg(w, at) for w in program]
    own = dict(section)
    if program[-1] == "serve":  # `vllm serve MODEL`
        words.append(model)
    elif program[0] == "trtllm-serve":
        words.append(model)
    else:
        words += [Arg("--model" if engine == "vllm" else "--model-path", model.span), model]
    served = _served_name(doc, sections, engine)
    if engine == "sglang":
        for k in ("model-path", "model_path", "served-model-name", "served_model_name", "nccl-port", "nccl_port"):
            own.pop(k, None)
    if served is not None and program[0] != "trtllm-serve":
        words += [Arg("--served-model-name", served.span), served]
    if mode != "agg" and program[0] != "trtllm-serve" and engine != "vllm":
        words += [Arg("--disaggregation-mode", at), Arg(mode, at)]
    if engine == "vllm" and program[-1] != "serve":
        connector = own.pop("connector", None)
        cpath = base + ("connector",)
        if connector is None:
            connector, cpath = backend.get("connector", "nixl") if "connector" in backend else "nixl", ("backend", "connector")
        if connector and str(connector).lower() not in ("null", "none"):
            text = _VLLM_CONNECTORS.get(str(connector).lower(), str(connector))
            span = Span(*doc.marks.value(cpath)) if _has(backend if cpath[1] == "connector" else section, cpath[-1]) else at
            words += [Arg("--kv-transfer-config", span), Arg(text, span)]
    if engine == "trtllm":
        return words  # the section is the engine config (`--extra-engine-args`), read as such by read()
    for k in sorted(own, key=str):
        words += _flag(doc, base + (k,), str(k), own[k], sweep)
    return words


def _has(mapping: Any, key: str) -> bool:
    return isinstance(mapping, dict) and key in mapping


def _served_name(doc: SourceDocument, sections: dict, engine: str) -> Arg | None:
    """get_served_model_name: the first `served-model-name` of the prefill, aggregated, then decode section."""
    if engine == "trtllm":
        return None  # the model directory's name, which the recipe's alias does not show
    for key in ("prefill", "aggregated", "decode"):
        sec = sections.get(key)
        for k in ("served-model-name", "served_model_name"):
            if isinstance(sec, dict) and sec.get(k):
                return Arg(str(sec[k]), Span(*doc.marks.value(("backend", _SECTIONS[engine], key, k))))
    return None


def _flag(doc: SourceDocument, path: tuple, key: str, value: Any, sweep: dict) -> list[Arg]:
    """_config_to_cli_args for one key: `true` a bare flag, `false`/null nothing, a list the flag then its items."""
    flag = Arg(f"--{flag_name(key)}", Span(*doc.marks.key(path)))
    if isinstance(value, bool):
        return [flag] if value else []
    if value is None:
        return []
    if isinstance(value, list):
        return [flag] + [_value(doc, path + (i,), v, sweep) for i, v in enumerate(value)]
    return [flag, _value(doc, path, value, sweep)]


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _value(doc: SourceDocument, path: tuple, value: Any, sweep: dict) -> Arg:
    span = Span(*doc.marks.value(path))
    if isinstance(value, (dict, list)):
        # srtctl passes str(value), Python's repr: what the engine makes of it is not read here
        return Arg("${srtctl_python_repr}", span)
    text = str(value)
    if sweep and any(m.group(1) in sweep for m in _PLACEHOLDER.finditer(text)):
        return Arg("${sweep:" + text + "}", span)  # set per sweep job (core/sweep.py expand_template)
    if isinstance(value, str) and span.line == span.end_line:
        return Arg(text, span, _chars(doc, path, text))
    return Arg(text, span)


def _chars(doc: SourceDocument, path: tuple, text: str) -> tuple[tuple[int, int], ...]:
    """(line, column) of each character of a one-line string value, so a finding inside JSON points at its key."""
    starts = doc.line_starts()
    out = []
    for off in scalar_offsets(doc, path, text):
        if off < 0:
            return ()
        line = bisect.bisect_right(starts, off)
        out.append((line, off - starts[line - 1] + 1))
    return tuple(out)


def _resources(doc: SourceDocument, w: Worker, res: dict, role: str) -> None:
    """Workers, GPUs and nodes of one role (ResourceConfig, topology.allocate_endpoints)."""
    def at(key: str) -> Span:
        return Span(*doc.marks.value(("resources", key)))

    workers = res.get(f"{role}_workers")
    if isinstance(workers, int) and not isinstance(workers, bool) and workers >= 0:
        w.replicas = Setting(workers, at(f"{role}_workers"), f"resources.{role}_workers")
    elif workers is None:  # num_prefill / num_decode / num_agg: `<role>_workers or 0`
        w.replicas = Setting(0, Span(*doc.marks.key(("resources",))), f"resources.{role}_workers unset (srtctl starts none)")
    else:
        w.replicas = Setting(Unknown(f"{role}_workers {workers!r}"), at(f"{role}_workers"), f"resources.{role}_workers")
    gpn = res.get("gpus_per_node")
    explicit = res.get(f"gpus_per_{role}")
    nodes, count = res.get(f"{role}_nodes"), res.get(f"{role}_workers")
    if not _int(gpn) or w.replicas.value == 0:
        return  # srtctl's default (4) is not written: the GPUs are not known from this file; or no worker runs
    if _int(explicit):
        gpus, span, origin = explicit, at(f"gpus_per_{role}"), f"resources.gpus_per_{role}"
    elif _int(nodes) and _int(count) and nodes > 0 and count > 0:
        gpus, span, origin = nodes * gpn // count, at(f"{role}_nodes"), f"resources.{role}_nodes × gpus_per_node / {role}_workers"
    elif role == "decode" and nodes == 0 and _int(count) and count > 0:
        w.notes.append("decode_nodes 0: decode shares the prefill nodes with the prefill's GPUs per worker (not compared)")
        return
    else:
        gpus, span, origin = gpn, at("gpus_per_node"), "resources.gpus_per_node"
    if gpus <= 0:
        return
    if gpus > gpn:
        w.nodes = -(-gpus // gpn)  # whole nodes, every GPU of each
        w.gpus = Setting(gpn, span, origin)
    else:
        w.gpus = Setting(gpus, span, origin)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _release_evidence(data: dict, ftype: str, base: Target) -> Target:
    """What the recipe says of the releases it runs: the container's tag (an image reference, `#` for enroot's `/`),
    for Dynamo only where srtctl installs none (`dynamo.install: false`), for the engine only where no setup script
    may replace it; and a Dynamo `version` or `wheel` srtctl pip-installs (DynamoConfig)."""
    from .common import image_evidence

    target = base.copy()
    dyn = data.get("dynamo") if isinstance(data.get("dynamo"), dict) else {}
    image = data["model"].get("container")
    if isinstance(image, str) and "/" in image.replace("#", "/") and ":" in image:
        ref = image.replace("#", "/", 1) if "#" in image.split("/")[0] else image
        dynamo_image = "ai-dynamo/" in ref or "/dynamo" in ref.split(":")[0]
        if (dynamo_image and dyn.get("install") is False) or (not dynamo_image and not data.get("setup_script")):
            image_evidence(target, ref)
    installs = dyn.get("install", True) is not False and ftype == "dynamo"
    # DynamoConfig: `wheel` is an ai-dynamo package version installed from staged wheels ("1.2.0.dev20260426"); it,
    # `hash` or `top_of_tree` clears `version` (NVIDIA/srt-slurm@c88ef73 src/srtctl/core/schema.py:1419-1497)
    key = "wheel" if dyn.get("wheel") else None if any(dyn.get(k) for k in ("hash", "top_of_tree")) else "version"
    version = dyn.get(key) if key else None
    version = str(version) if isinstance(version, (str, int, float)) and not isinstance(version, bool) else None
    if installs and version:
        knowledge.evidence_from_tag(target, "dynamo", version, f"dynamo.{key} {version} (srtctl pip-installs it, {SOURCE} DynamoConfig)")
    return target
