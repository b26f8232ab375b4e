"""Ray Serve LLM prefill/decode applications: a Serve config (`serve run` / `serve deploy` YAML) whose application
is built by Ray's P/D builder.

Recognised by what the file declares: a top-level `applications:` list (Ray Serve's ServeDeploySchema) whose
application's `import_path` names Ray's own P/D builder. Any other builder (a module of the user's, such as
`builder:pd_builder`) is user code: what it does with `args` is not in the file, so such a file is "not a serving
config I know", never read as if it were Ray's builder.

Ray's builder and its schema (ray-project/ray, public entry `ray.serve.llm:build_pd_openai_app`, python/ray/serve/llm/
__init__.py; implementation python/ray/llm/_internal/serve/deployments/prefill_decode_disagg/prefill_decode_disagg.py,
later python/ray/llm/_internal/serve/serving_patterns/prefill_decode/builder.py at d6d53738):
- `args` is PDServingArgs: `prefill_config`, `decode_config` (each an LLMConfig, or the path of a YAML file holding
  one), `proxy_deployment_config`, later also `proxy_cls_config`, `ingress_cls_config`, `ingress_deployment_config`.
- LLMConfig: `model_loading_config: {model_id, model_source}`, `llm_engine` (default vLLM), `engine_kwargs` (vLLM's
  engine arguments, by their Python names: `tensor_parallel_size`, `kv_transfer_config`, ...), `accelerator_type`,
  `runtime_env`, `deployment_config` (Ray Serve deployment options: `num_replicas`, `autoscaling_config`, ...).
- The builder makes one deployment from `prefill_config` ("Prefill:" name prefix) and one from `decode_config`
  ("Decode:"), and a proxy that sends each request to the prefill deployment, then the decode one: the roles are the
  fields, and the two are one pair.
- A missing `kv_transfer_config`: the first builder filled in `{kv_connector: NixlConnector, kv_role: kv_both}`
  (prefill_decode_disagg.py, `build_pd_openai_app`, ray-project/ray blob 771526339 of that file); the builder at
  d6d53738 refuses it ("kv_transfer_config is required for P/D disaggregation"). Which one runs depends on the Ray
  release, which the file does not say: the connector is then Unknown, never assumed.
- Replicas: Ray Serve's `num_replicas` defaults to 1; with `autoscaling_config`, `min_replicas` (default 1, 0
  allowed: scaled up when traffic arrives) is the floor (ray-project/ray doc/source/serve/autoscaling-guide.md and
  python/ray/serve/config.py AutoscalingConfig).
"""

from __future__ import annotations

import json
from typing import Any

from .. import engines
from ..cmdline import Arg, Command, flag_name, parse_flags
from ..knowledge.versions import Target
from ..model import Deployment, Host, Setting, Unknown, Worker
from ..source import SourceDocument, Span
from .common import count

# import paths of Ray's P/D builder (the public entry point and the modules it lived in)
PD_BUILDERS = frozenset({
    "ray.serve.llm:build_pd_openai_app",
    "ray.llm._internal.serve.deployments.prefill_decode_disagg.prefill_decode_disagg:build_pd_openai_app",
    "ray.llm._internal.serve.serving_patterns.prefill_decode.builder:build_pd_openai_app",
})
_SIDES = (("prefill_config", "prefill"), ("decode_config", "decode"))


def applications(data: Any) -> list[dict] | None:
    """The applications of a Ray Serve config (`applications:`, a list of mappings with an `import_path`), else None."""
    if not isinstance(data, dict) or "kind" in data:
        return None
    apps = data.get("applications")
    if not isinstance(apps, list) or not apps or not all(isinstance(a, dict) and isinstance(a.get("import_path"), str) for a in apps):
        return None
    return apps


def looks_like_serve_config(data: Any) -> bool:
    """A Ray Serve config with at least one application built by Ray's P/D builder."""
    apps = applications(data)
    return apps is not None and any(_builder(a) in PD_BUILDERS for a in apps)


def unknown_builders(data: Any) -> list[str]:
    """For a Ray Serve config no application of which is Ray's P/D builder: what it names instead (for "not a serving
    config I know")."""
    apps = applications(data)
    if apps is None:
        return []
    return [f"Ray Serve application built by {_builder(a)} (user code, not Ray's P/D builder: what it starts is not in this file)"
            for a in apps]


def _builder(app: dict) -> str:
    return str(app.get("import_path", "")).strip()


def read(doc: SourceDocument, dep: Deployment, target: Target) -> None:
    dep.format = "ray-serve"
    for i, app in enumerate(doc.data["applications"]):
        if _builder(app) not in PD_BUILDERS:
            continue
        base = ("applications", i)
        args = app.get("args")
        if not isinstance(args, dict):
            continue
        name = str(app.get("name", f"application {i}"))
        app_env = _env(doc, base + ("runtime_env",), app.get("runtime_env"))
        for key, role in _SIDES:
            cfg = args.get(key)
            path = base + ("args", key)
            if not isinstance(cfg, dict):
                if key in args:
                    _config_elsewhere(doc, dep, path, cfg, role, name, target)
                continue
            dep.workers.append(_worker(doc, path, cfg, role, name, app_env, target))


def _host(doc: SourceDocument, name: str, role: str) -> Host:
    # Ray places each replica on a node of the cluster: which one, and whether two share it, is not in the file
    return Host("unknown", "ray", f"ray:{doc.path}:{name}:{role}")


def _config_elsewhere(doc: SourceDocument, dep: Deployment, path: tuple, cfg: Any, role: str, app: str, target: Target) -> None:
    """`prefill_config: path/to/llm_config.yaml`: the LLMConfig is in another file, not read here."""
    span = Span(*doc.marks.value(path))
    w = Worker(name=f"{app} {role}", role=role, role_why=f"{path[-1]} of {_builder(doc.data['applications'][path[1]])}", program="vllm",
               engine="vllm", system="vllm", path=doc.path, span=span, target=target.copy(), host=_host(doc, app, role), role_from="field")
    w.notes.append(f"its LLMConfig is read from {cfg!r} at run time, which this file does not hold: its engine arguments are not checked")
    w.settings["kv_connector"] = Setting(Unknown(f"the LLMConfig is in {cfg!r}"), span, path[-1])
    dep.workers.append(w)


def _worker(doc: SourceDocument, path: tuple, cfg: dict, role: str, app: str, app_env: dict[str, Setting], target: Target) -> Worker:
    span = Span(*doc.marks.key(path))
    builder = _builder(doc.data["applications"][path[1]])
    engine_name = cfg.get("llm_engine", "vLLM")
    w = Worker(name=f"{app} {role}", role=role, role_why=f"{path[-1]} of {builder}", program="vllm", engine="vllm", system="vllm",
               path=doc.path, span=span, target=target.copy(), host=_host(doc, app, role), role_from="field")
    engines.apply_env(w, app_env)
    engines.apply_env(w, _env(doc, path + ("runtime_env",), cfg.get("runtime_env")))
    argv = _argv(doc, path, cfg)
    flags, flag_spans, positional = parse_flags(argv)
    engines.apply_command(w, Command("vllm", argv, flags, flag_spans, positional, {}, span))
    w.set_role(role, f"{path[-1]} of {builder}", "field")  # the builder's field decides, whatever kv_role says
    kwargs = cfg.get("engine_kwargs") if isinstance(cfg.get("engine_kwargs"), dict) else {}
    kv = kwargs.get("kv_transfer_config")
    for key in kv if isinstance(kv, dict) else ():
        s = w.settings.get(str(key))
        if s is not None and s.origin.startswith("kv-transfer-config"):  # each kv_* key where the YAML writes it
            w.settings[str(key)] = Setting(s.value, Span(*doc.marks.key(path + ("engine_kwargs", "kv_transfer_config", key))), s.origin)
    for key, value in kwargs.items():
        if value is False and isinstance(key, str):
            w.settings[engines.setting_of(key)] = Setting(False, Span(*doc.marks.value(path + ("engine_kwargs", key))), f"engine_kwargs {key}")
    # LLMEngine's value for vLLM was written "VLLMEngine", "VLLM" and "vLLM" across Ray releases (server_models.py)
    if str(engine_name).lower() not in ("vllm", "vllmengine") or cfg.get("server_cls"):
        w.engine = None
        what = f"server_cls: {cfg['server_cls']}" if cfg.get("server_cls") else f"llm_engine: {engine_name}"
        w.notes.append(f"{what}: an engine the doctor does not check under Ray Serve")
    if kwargs.get("kv_transfer_config") is None:
        w.settings["kv_connector"] = Setting(Unknown("no kv_transfer_config: Ray's first P/D builder filled in NixlConnector, later "
                                                     "ones refuse to start without one, and the file does not say which Ray runs"),
                                             span, "engine_kwargs")
    dcfg = cfg.get("deployment_config") if isinstance(cfg.get("deployment_config"), dict) else {}
    _replicas(doc, w, path + ("deployment_config",), dcfg)
    return w


def _argv(doc: SourceDocument, path: tuple, cfg: dict) -> list[Arg]:
    """The vLLM engine arguments of one LLMConfig as flags, each positioned at the key (flag) or value it came from."""
    out: list[Arg] = []
    loading = cfg.get("model_loading_config") if isinstance(cfg.get("model_loading_config"), dict) else {}
    for key in ("model_source", "model_id"):  # vLLM loads model_source; model_id is the name it is served under
        if isinstance(loading.get(key), (str, int, float)):
            mpath = path + ("model_loading_config", key)
            out += [Arg("--model", Span(*doc.marks.key(mpath))), Arg(str(loading[key]), Span(*doc.marks.value(mpath)))]
            break
    if isinstance(loading.get("model_id"), (str, int, float)):
        mpath = path + ("model_loading_config", "model_id")
        out += [Arg("--served-model-name", Span(*doc.marks.key(mpath))), Arg(str(loading["model_id"]), Span(*doc.marks.value(mpath)))]
    kwargs = cfg.get("engine_kwargs")
    if not isinstance(kwargs, dict):
        return out
    for key, value in kwargs.items():
        if not isinstance(key, str) or value is None:
            continue
        kpath = path + ("engine_kwargs", key)
        k, v = Span(*doc.marks.key(kpath)), Span(*doc.marks.value(kpath))
        flag = f"--{flag_name(key)}"
        if value is True:
            out.append(Arg(flag, k))
        elif value is False:
            continue  # AsyncEngineArgs(key=False): set below as a setting (no flag stands for it on every option)
        else:
            text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
            out += [Arg(flag, k), Arg(text, v)]
    return out


def _env(doc: SourceDocument, path: tuple, runtime_env: Any) -> dict[str, Setting]:
    env = runtime_env.get("env_vars") if isinstance(runtime_env, dict) else None
    if not isinstance(env, dict):
        return {}
    return {str(k): Setting(str(v), Span(*doc.marks.value(path + ("env_vars", k))), f"runtime_env {k}") for k, v in env.items()}


def _replicas(doc: SourceDocument, w: Worker, path: tuple, dcfg: dict) -> None:
    auto = dcfg.get("autoscaling_config")
    if "num_replicas" in dcfg and dcfg["num_replicas"] != "auto":
        w.replicas = Setting(count(dcfg["num_replicas"]), Span(*doc.marks.value(path + ("num_replicas",))), "num_replicas")
    elif isinstance(auto, dict) or dcfg.get("num_replicas") == "auto":
        auto = auto if isinstance(auto, dict) else {}
        if "min_replicas" in auto:
            floor = count(auto["min_replicas"])
            at = Span(*doc.marks.value(path + ("autoscaling_config", "min_replicas")))
        else:
            floor, at = 1, Span(*doc.marks.key(path))
        w.replicas = Setting(floor, at, "autoscaling_config min_replicas")
        w.settings["autoscaled"] = Setting(floor, at, "Ray Serve autoscaling_config min_replicas")
