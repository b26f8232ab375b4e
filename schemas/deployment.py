"""One neutral model of a disaggregated deployment, read from today's formats.

Shell scripts and compose files with `vllm serve` / `python -m dynamo.vllm` / `python -m sglang.launch_server`
command lines, Kubernetes manifests (Deployments, StatefulSets, LeaderWorkerSets, Dynamo's DynamoGraphDeployment)
and llm-d's EndpointPickerConfig all become a `Deployment`: workers with a role, an engine, the settings that must
agree between prefill and decode, and the source position of every one of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .cmdline import Arg, Command, Span, args_from_text, find_command, json_arg
from .source import SourceDocument

Value = tuple[Any, Span]


@dataclass
class WorkerDecl:
    name: str
    role: str  # prefill | decode | aggregated | frontend | router | proxy | unknown
    engine: str  # vllm | dynamo.vllm | sglang | dynamo.frontend | sglang-router | vllm-proxy
    span: Span  # where the worker is declared (its command)
    host: str  # workers with the same host share ports and localhost
    replicas: int = 1
    gpus: int | None = None
    fields: dict[str, Value] = field(default_factory=dict)
    env: dict[str, Value] = field(default_factory=dict)
    flags: dict[str, Value] = field(default_factory=dict)  # every --flag as written
    extra: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        v = self.fields.get(key)
        return v[0] if v is not None else default

    def where(self, key: str) -> Span:
        v = self.fields.get(key)
        return v[1] if v is not None else self.span


@dataclass
class Deployment:
    path: str
    format: str  # script | kubernetes | dynamo-graph | compose | llm-d
    workers: list[WorkerDecl] = field(default_factory=list)
    router: dict[str, Value] = field(default_factory=dict)  # llm-d scheduler settings
    router_span: Span | None = None
    multi_host: bool = False  # workers run on different hosts (pods, containers)
    notes: list[str] = field(default_factory=list)

    def of_role(self, role: str) -> list[WorkerDecl]:
        return [w for w in self.workers if w.role == role]


# --- per-engine flag extraction ---------------------------------------------------------------------------------

_ENGINE_FLAGS = {
    # field: flags, in order of preference (sglang names after vllm's)
    "model": ("model", "model-path"),
    "served_model_name": ("served-model-name",),
    "tp": ("tensor-parallel-size", "tp", "tp-size"),
    "dp": ("data-parallel-size", "dp", "dp-size"),
    "block_size": ("block-size", "page-size"),
    "dtype": ("dtype",),
    "kv_cache_dtype": ("kv-cache-dtype",),
    "disaggregation_mode": ("disaggregation-mode",),
    "transfer_backend": ("disaggregation-transfer-backend",),
    "bootstrap_port": ("disaggregation-bootstrap-port",),
    "port": ("port",),
    "connector": ("connector",),
    "namespace": ("namespace",),
}
_SHORT = {"tp": "tensor-parallel-size"}


def _from_command(w: WorkerDecl, cmd: Command) -> None:
    for name, arg in cmd.flags.items():
        w.flags[name] = (arg.text, cmd.flag_spans.get(name, arg.span))
    for fname, flags in _ENGINE_FLAGS.items():
        for f in flags:
            if f in cmd.flags:
                w.fields[fname] = (cmd.flags[f].text, cmd.flags[f].span)
                break
    if "model" not in w.fields and cmd.program == "vllm" and cmd.positional:
        w.fields["model"] = (cmd.positional[0].text, cmd.positional[0].span)
    for key, arg in cmd.env.items():
        w.env[key] = (arg.text, arg.span)
    kv = cmd.flags.get("kv-transfer-config")
    if kv is not None:
        obj, err, spans = json_arg(kv)
        if err:
            w.extra["kv_config_error"] = (err, kv.span)
        else:
            w.fields["kv_transfer_config"] = (obj, kv.span)
            for key in ("kv_connector", "kv_role", "kv_load_failure_policy", "kv_buffer_device"):
                if key in obj:
                    w.fields[key] = (obj[key], spans.get(key, kv.span))
    if cmd.program == "dynamo.vllm" and "kv_connector" not in w.fields:
        # Dynamo 1.x's vLLM worker sets NixlConnector itself for disaggregated modes (`--connector` overrides).
        conn = w.get("connector", "nixl" if w.get("disaggregation_mode") in ("prefill", "decode") or "is-prefill-worker" in cmd.flags else None)
        if conn and str(conn).lower() != "none":
            w.fields["kv_connector"] = ({"nixl": "NixlConnector"}.get(str(conn).lower(), conn), w.where("connector"))
    if cmd.program in ("sglang", "dynamo.sglang") and "transfer_backend" not in w.fields and w.get("disaggregation_mode") in ("prefill", "decode"):
        w.fields["transfer_backend"] = ("mooncake", w.span)  # SGLang's default


def _role(w: WorkerDecl, cmd: Command, hint: str) -> str:
    if cmd.program == "dynamo.frontend":
        return "frontend"
    if cmd.program in ("sglang-router",):
        return "router"
    if cmd.program == "vllm-proxy":
        return "proxy"
    mode = str(w.get("disaggregation_mode", "")).lower()
    if mode in ("prefill", "decode"):
        return mode
    if mode in ("agg", "aggregated", "null"):
        return "aggregated"
    if "is-prefill-worker" in cmd.flags:
        return "prefill"
    role = str(w.get("kv_role", "")).lower()
    if role == "kv_producer":
        return "prefill"
    if role == "kv_consumer":
        return "decode"
    h = hint.lower()
    if re.search(r"prefill|\bp\d?\b|producer", h):
        return "prefill"
    if re.search(r"decode|\bd\d?\b|consumer", h):
        return "decode"
    if "kv_connector" in w.fields or cmd.program == "dynamo.vllm":
        return "unknown"
    return "aggregated"


def worker_from_command(cmd: Command, name: str, host: str, hint: str = "", env: dict[str, Value] | None = None) -> WorkerDecl:
    w = WorkerDecl(name=name, role="unknown", engine=cmd.program, span=cmd.start, host=host)
    w.env.update(env or {})
    _from_command(w, cmd)
    w.role = _role(w, cmd, hint + " " + name)
    for key in ("VLLM_NIXL_SIDE_CHANNEL_PORT", "VLLM_NIXL_SIDE_CHANNEL_HOST", "UCX_TLS", "DYN_NAMESPACE"):
        if key in w.env:
            w.fields[key.lower()] = w.env[key]
    if "namespace" not in w.fields and "dyn_namespace" in w.fields:
        w.fields["namespace"] = w.fields["dyn_namespace"]
    return w


def assign_proxy_roles(dep: Deployment) -> None:
    """vLLM's toy proxy names its prefill and decode instances by port: use that for `kv_both` instances."""
    for proxy in dep.of_role("proxy"):
        for flag, role in (("prefiller-ports", "prefill"), ("decoder-ports", "decode"), ("prefiller-port", "prefill"), ("decoder-port", "decode")):
            ports = set(str(proxy.flags.get(flag, ("", None))[0]).replace(",", " ").split())
            for w in dep.workers:
                if w.role in ("unknown", "aggregated") and w.engine == "vllm" and str(w.get("port", "8000")) in ports:
                    w.role = role


# --- shell scripts ----------------------------------------------------------------------------------------------


def from_script(path: str, text: str) -> Deployment:
    dep = Deployment(path=path, format="script")
    exported: dict[str, Value] = {}
    lines = text.splitlines()
    for args in args_from_text(text):
        if args and args[0].text == "export":
            for a in args[1:]:
                name, eq, value = a.text.partition("=")
                if eq:
                    exported[name] = (value, a.pos_of(len(name) + 1, len(value)))
            continue
        cmd = find_command(args)
        if cmd is None:
            continue
        line = cmd.start.line
        hint = " ".join(lines[max(0, line - 3) : line])  # a comment or variable name above often says which it is
        dep.workers.append(worker_from_command(cmd, f"{cmd.program} at line {line}", "script", hint, dict(exported)))
    assign_proxy_roles(dep)
    return dep


# --- YAML: Kubernetes, DynamoGraphDeployment, compose, llm-d ------------------------------------------------------


def _scalar_arg(doc: SourceDocument, path: tuple, text: str) -> Arg:
    """An argument written as one YAML scalar, with per-character positions when it sits on one line."""
    p = doc.marks.value(path)
    span = Span(p.line, p.column, p.end_line, p.end_column)
    line = doc.line_text(p.line)
    start = p.column - 1
    if start < len(line) and line[start] in "'\"":
        start += 1
    if p.line == p.end_line and line[start : start + len(text)] == text:
        return Arg(text, span, tuple((p.line, start + 1 + i) for i in range(len(text))))
    return Arg(text, span, ())


def _text_block_args(doc: SourceDocument, path: tuple, text: str) -> list[list[Arg]]:
    """Shell commands inside a YAML string (`sh -c "..."`, a block scalar), positioned in the file."""
    p = doc.marks.value(path)
    line = doc.line_text(p.line)
    if line[p.column - 1 : p.column] in ("|", ">"):
        # A block scalar: its content starts on the next line, at the block's indentation.
        first = p.line + 1
        indent = len(doc.line_text(first)) - len(doc.line_text(first).lstrip())
        commands = args_from_text(text, base_line=first, base_col=indent + 1)
        return [[Arg(a.text, Span(a.span.line, a.span.column + (indent if a.span.line != first else 0), a.span.end_line, a.span.end_column + (indent if a.span.end_line != first else 0)),
                     tuple((ln, c + (indent if ln != first else 0)) for ln, c in a.char_pos)) for a in cmd] for cmd in commands]
    col = p.column + (1 if line[p.column - 1 : p.column] in "'\"" else 0)
    return args_from_text(text, base_line=p.line, base_col=col)


def _container_commands(doc: SourceDocument, base: tuple, container: dict) -> list[list[Arg]]:
    words: list[Arg] = []
    for key in ("command", "args"):
        value = container.get(key)
        if isinstance(value, list):
            words += [_scalar_arg(doc, base + (key, i), str(v)) for i, v in enumerate(value)]
        elif isinstance(value, str):
            words += [a for cmd in _text_block_args(doc, base + (key,), value) for a in cmd]
    # `sh -c "script"`: the script is the command line.
    if len(words) >= 3 and words[0].text.rsplit("/", 1)[-1] in ("sh", "bash") and words[1].text in ("-c", "-lc", "-ec"):
        script_index = 2
        for key in ("command", "args"):
            value = container.get(key)
            if isinstance(value, list):
                for i, v in enumerate(value):
                    if v == words[script_index].text:
                        return _text_block_args(doc, base + (key, i), v)
    return [words] if words else []


def _env(doc: SourceDocument, base: tuple, env: Any) -> dict[str, Value]:
    out: dict[str, Value] = {}
    if isinstance(env, list):
        for i, item in enumerate(env):
            if isinstance(item, dict) and "name" in item and "value" in item:
                p = doc.marks.value(base + (i, "value"))
                out[str(item["name"])] = (str(item["value"]), Span(p.line, p.column, p.end_line, p.end_column))
            elif isinstance(item, dict) and "name" in item and isinstance(item.get("valueFrom"), dict):
                # Resolved at run time (e.g. fieldRef status.podIP): known to be set, value unknown here.
                p = doc.marks.value(base + (i, "valueFrom"))
                ref = item["valueFrom"].get("fieldRef", {}).get("fieldPath", "ref") if isinstance(item["valueFrom"].get("fieldRef"), dict) else "ref"
                out[str(item["name"])] = (f"valueFrom:{ref}", Span(p.line, p.column, p.end_line, p.end_column))
            elif isinstance(item, str) and "=" in item:
                name, _, value = item.partition("=")
                p = doc.marks.value(base + (i,))
                out[name] = (value, Span(p.line, p.column, p.end_line, p.end_column))
    elif isinstance(env, dict):
        for name, value in env.items():
            p = doc.marks.value(base + (name,))
            out[str(name)] = (str(value), Span(p.line, p.column, p.end_line, p.end_column))
    return out


def _count(value: Any) -> int:
    """A replica count as written, or 1 when it is no integer (a template placeholder, a typo)."""
    try:
        return max(int(str(value).strip()), 0) if value is not None else 1
    except ValueError:
        return 1


def _gpus(resources: Any) -> int | None:
    if not isinstance(resources, dict):
        return None
    for section in ("limits", "requests"):
        lim = resources.get(section)
        if isinstance(lim, dict):
            for key in ("nvidia.com/gpu", "gpu", "amd.com/gpu"):
                if key in lim:
                    try:
                        return int(str(lim[key]))
                    except ValueError:
                        return None
    return None


def _rdma(resources: Any) -> bool:
    if not isinstance(resources, dict):
        return False
    keys = [k for sec in ("limits", "requests") if isinstance(resources.get(sec), dict) for k in resources[sec]]
    return any("rdma" in str(k).lower() or "/hca" in str(k).lower() or "infiniband" in str(k).lower() for k in keys)


def _pod_workers(doc: SourceDocument, dep: Deployment, name: str, pod_spec_path: tuple, pod_spec: dict, replicas: int, hint: str) -> None:
    containers = pod_spec.get("containers") if isinstance(pod_spec, dict) else None
    if not isinstance(containers, list):
        return
    host_network = bool(pod_spec.get("hostNetwork"))
    for ci, c in enumerate(containers):
        if not isinstance(c, dict):
            continue
        base = pod_spec_path + ("containers", ci)
        env = _env(doc, base + ("env",), c.get("env"))
        caps = (((c.get("securityContext") or {}).get("capabilities") or {}).get("add") or []) if isinstance(c.get("securityContext"), dict) else []
        for args in _container_commands(doc, base, c):
            cmd = find_command(args)
            if cmd is None:
                continue
            w = worker_from_command(cmd, f"{name}/{c.get('name', ci)}", "host-network" if host_network else f"pod:{name}", hint + " " + str(c.get("name", "")), env)
            w.replicas = replicas
            w.gpus = _gpus(c.get("resources"))
            w.extra["rdma"] = _rdma(c.get("resources"))
            w.extra["capabilities"] = [str(x) for x in caps] if isinstance(caps, list) else []
            dep.workers.append(w)


def _dgd(doc: SourceDocument, dep: Deployment, data: dict) -> None:
    services = (data.get("spec") or {}).get("services") if isinstance(data.get("spec"), dict) else None
    if not isinstance(services, dict):
        return
    for sname, svc in services.items():
        if not isinstance(svc, dict):
            continue
        base = ("spec", "services", sname)
        main = ((svc.get("extraPodSpec") or {}).get("mainContainer")) if isinstance(svc.get("extraPodSpec"), dict) else None
        env = _env(doc, base + ("envs",), svc.get("envs"))
        role_hint = f"{svc.get('componentType', '')} {svc.get('subComponentType', '')} {sname}"
        found = False
        if isinstance(main, dict):
            env.update(_env(doc, base + ("extraPodSpec", "mainContainer", "env"), main.get("env")))
            for args in _container_commands(doc, base + ("extraPodSpec", "mainContainer"), main):
                cmd = find_command(args)
                if cmd is None:
                    continue
                found = True
                w = worker_from_command(cmd, sname, f"pod:{sname}", role_hint, env)
                sub = str(svc.get("subComponentType", "")).lower()
                if sub in ("prefill", "decode"):
                    w.role = sub
                w.replicas = _count(svc.get("replicas", 1))
                w.gpus = _gpus(svc.get("resources"))
                w.extra["rdma"] = _rdma(svc.get("resources"))
                dep.workers.append(w)
        if not found and str(svc.get("componentType", "")).lower() == "frontend":
            p = doc.marks.key(base)
            dep.workers.append(WorkerDecl(sname, "frontend", "dynamo.frontend", Span(p.line, p.column, p.end_line, p.end_column), f"pod:{sname}", env=env))


def _llmd(doc: SourceDocument, dep: Deployment, data: dict) -> None:
    p = doc.marks.key(("plugins",)) if "plugins" in data else doc.marks.value(())
    dep.router_span = Span(p.line, p.column, p.end_line, p.end_column)
    plugins = data.get("plugins") or []
    names = {}
    for i, plugin in enumerate(plugins if isinstance(plugins, list) else []):
        if not isinstance(plugin, dict):
            continue
        ptype = str(plugin.get("type", ""))
        names[str(plugin.get("name", ptype))] = ptype
        params = plugin.get("parameters") or {}
        for key in ("nonCachedTokens", "threshold"):
            if isinstance(params, dict) and key in params:
                q = doc.marks.value(("plugins", i, "parameters", key))
                dep.router[f"{ptype}.{key}"] = (params[key], Span(q.line, q.column, q.end_line, q.end_column))
        q = doc.marks.value(("plugins", i))
        dep.router[f"plugin:{ptype}"] = (plugin.get("name", ptype), Span(q.line, q.column, q.end_line, q.end_column))
    profiles = data.get("schedulingProfiles") or []
    for i, prof in enumerate(profiles if isinstance(profiles, list) else []):
        if not isinstance(prof, dict):
            continue
        refs = [str(r.get("pluginRef", "")) for r in (prof.get("plugins") or []) if isinstance(r, dict)]
        q = doc.marks.value(("schedulingProfiles", i, "name")) if "name" in prof else doc.marks.value(("schedulingProfiles", i))
        dep.router[f"profile:{prof.get('name', i)}"] = ([names.get(r, r) for r in refs], Span(q.line, q.column, q.end_line, q.end_column))


WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


def looks_like_kubernetes(data: Any) -> bool:
    return isinstance(data, dict) and "kind" in data and "apiVersion" in data


def looks_like_compose(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("services"), dict) and "kind" not in data and any(
        isinstance(s, dict) and ("image" in s or "command" in s or "build" in s) for s in data["services"].values())


def from_yaml(path: str, docs: list[SourceDocument]) -> Deployment | None:
    """A deployment from Kubernetes documents, a compose file or an llm-d config; None if the YAML is none of these."""
    dep: Deployment | None = None
    for doc in docs:
        data = doc.data
        if looks_like_compose(data):
            dep = dep or Deployment(path=path, format="compose")
            for sname, svc in data["services"].items():
                if not isinstance(svc, dict):
                    continue
                base = ("services", sname)
                env = _env(doc, base + ("environment",), svc.get("environment"))
                host = "host-network" if svc.get("network_mode") == "host" else f"service:{sname}"
                for args in _container_commands(doc, base, {"command": svc.get("entrypoint"), "args": svc.get("command")} if svc.get("entrypoint") else {"command": svc.get("command")}):
                    cmd = find_command(args)
                    if cmd is not None:
                        w = worker_from_command(cmd, sname, host, sname, env)
                        gpus = (((svc.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get("devices") if isinstance(svc.get("deploy"), dict) else None
                        if isinstance(gpus, list) and gpus and isinstance(gpus[0], dict) and "count" in gpus[0]:
                            try:
                                w.gpus = int(gpus[0]["count"])
                            except (TypeError, ValueError):
                                pass
                        dep.workers.append(w)
            continue
        if not looks_like_kubernetes(data):
            continue
        kind = str(data.get("kind"))
        items = data.get("items") if kind == "List" else None
        if kind == "List" and isinstance(items, list):
            continue  # rare in practice; Helm output is a stream of documents
        dep = dep or Deployment(path=path, format="kubernetes")
        name = str((data.get("metadata") or {}).get("name", kind)) if isinstance(data.get("metadata"), dict) else kind
        spec = data.get("spec") if isinstance(data.get("spec"), dict) else {}
        if kind == "DynamoGraphDeployment":
            dep.format = "dynamo-graph"
            _dgd(doc, dep, data)
        elif kind == "EndpointPickerConfig":
            dep.format = "llm-d" if not dep.workers else dep.format
            _llmd(doc, dep, data)
        elif kind in WORKLOAD_KINDS:
            tmpl = spec.get("template") if isinstance(spec.get("template"), dict) else {}
            _pod_workers(doc, dep, name, ("spec", "template", "spec"), tmpl.get("spec") or {}, _count(spec.get("replicas", 1)), name)
        elif kind == "LeaderWorkerSet":
            lwt = spec.get("leaderWorkerTemplate") if isinstance(spec.get("leaderWorkerTemplate"), dict) else {}
            for tkey in ("leaderTemplate", "workerTemplate"):
                tmpl = lwt.get(tkey) if isinstance(lwt.get(tkey), dict) else None
                if tmpl:
                    _pod_workers(doc, dep, f"{name}/{tkey}", ("spec", "leaderWorkerTemplate", tkey, "spec"), tmpl.get("spec") or {}, _count(spec.get("replicas", 1)), name)
        elif kind == "Pod":
            _pod_workers(doc, dep, name, ("spec",), spec, 1, name)
    if dep is not None:
        assign_proxy_roles(dep)
        hosts = {w.host for w in dep.workers if w.role in ("prefill", "decode")}
        dep.multi_host = len(hosts) > 1 or any(w.replicas > 1 and w.host.startswith("pod:") for w in dep.workers)
    return dep
