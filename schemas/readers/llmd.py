"""llm-d: the scheduler's EndpointPickerConfig (alone, or inside gaie Helm values), and the modelservice Helm values
whose `prefill:` and `decode:` blocks describe the vLLM pods."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .. import pd_sidecar
from ..cmdline import Arg, Command, parse_flags
from ..knowledge.versions import Target
from ..model import Deployment, Host, Setting
from ..shell import ShellReader
from ..source import SourceDocument, Span
from .common import container_launches, count, env_from_k8s, gpus_from_resources, new_worker, rdma_requested, scalar_arg
from .embedded import embedded_yaml
from .gotemplate import templated


def looks_like_epp(data: Any) -> bool:
    return isinstance(data, dict) and data.get("kind") == "EndpointPickerConfig"


def read_epp(doc: SourceDocument, dep: Deployment, to_file=lambda s: s) -> None:
    """Plugins and scheduling profiles: `router[...]` settings with their spans."""
    data = doc.data
    dep.format = "llm-d" if not dep.workers else dep.format
    p = doc.marks.key(("plugins",)) if "plugins" in data else doc.marks.value(())
    dep.router_span = to_file(Span(*p))
    plugins = data.get("plugins") or []
    names: dict[str, str] = {}
    for i, plugin in enumerate(plugins if isinstance(plugins, list) else []):
        if not isinstance(plugin, dict):
            continue
        ptype = str(plugin.get("type", ""))
        names[str(plugin.get("name", ptype))] = ptype
        params = plugin.get("parameters") or {}
        for key in ("nonCachedTokens", "threshold"):
            if isinstance(params, dict) and key in params:
                q = doc.marks.value(("plugins", i, "parameters", key))
                dep.router[f"{ptype}.{key}"] = Setting(params[key], to_file(Span(*q)), f"{ptype} {key}")
        q = doc.marks.value(("plugins", i))
        dep.router[f"plugin:{ptype}"] = Setting(plugin.get("name", ptype), to_file(Span(*q)), "plugins")
    profiles = data.get("schedulingProfiles") or []
    for i, prof in enumerate(profiles if isinstance(profiles, list) else []):
        if not isinstance(prof, dict):
            continue
        listed = prof.get("plugins")
        refs = [str(r.get("pluginRef", "")) for r in (listed if isinstance(listed, list) else []) if isinstance(r, dict)]
        q = doc.marks.value(("schedulingProfiles", i, "name")) if "name" in prof else doc.marks.value(("schedulingProfiles", i))
        dep.router[f"profile:{prof.get('name', i)}"] = Setting([names.get(r, r) for r in refs], to_file(Span(*q)), "schedulingProfiles")


def read_config_text(doc: SourceDocument, dep: Deployment) -> bool:
    """An EPP container given its config inline: `--config-text TEXT` in a container's args, in any object (an EPP
    Deployment, an LLMInferenceService's `router.scheduler.template`): the EPP reads TEXT in lieu of a file
    (llm-d/llm-d-inference-scheduler@520af478 pkg/epp/server/options.go:208). True when one was read. The form
    `--config-text=TEXT` in one item is not read: the positions inside the item are not kept."""
    found = False
    for path, args in _arg_lists(doc.data, ()):
        for i, a in enumerate(args):
            if a != "--config-text" or i + 1 >= len(args) or not isinstance(args[i + 1], str):
                continue
            inner = embedded_yaml(doc, path + (i + 1,), args[i + 1])
            for d in (inner[0] if inner else []):
                if looks_like_epp(d.data):
                    read_epp(d, dep, inner[1])
                    found = True
    return found


def _arg_lists(node: Any, at: tuple) -> Iterator[tuple[tuple, list]]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "args" and isinstance(v, list):
                yield at + (k,), v
            elif isinstance(v, (dict, list)):
                yield from _arg_lists(v, at + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _arg_lists(v, at + (i,))


def looks_like_gaie_values(data: Any) -> bool:
    ie = data.get("inferenceExtension") if isinstance(data, dict) else None
    return isinstance(ie, dict) and isinstance(ie.get("pluginsCustomConfig"), dict)


def read_gaie_values(doc: SourceDocument, dep: Deployment) -> None:
    """gaie Helm values: the EPP config is a string under inferenceExtension.pluginsCustomConfig."""
    dep.format = "helm-values"
    custom = doc.data["inferenceExtension"]["pluginsCustomConfig"]
    for key, text in custom.items():
        if not isinstance(text, str):
            continue
        found = embedded_yaml(doc, ("inferenceExtension", "pluginsCustomConfig", key), text)
        if found is None:
            continue
        inner, to_file = found
        for d in inner:
            if looks_like_epp(d.data):
                read_epp(d, dep, to_file)


def looks_like_modelservice_values(data: Any) -> bool:
    return isinstance(data, dict) and any(isinstance(data.get(k), dict) and isinstance(data[k].get("containers"), list) for k in ("prefill", "decode"))


# What llm-d does when its prefill pool has no pod: the scheduler's P/D profile handler finds no prefill target and sets
# no prefiller header (llm-d/llm-d-inference-scheduler@520af47896e5f06e43d09aca281a1149187b0ffd
# pkg/epp/framework/plugins/scheduling/profilehandler/disagg/disagg_headers_handler.go:118-131), and the routing
# sidecar, seeing none, skips disaggregated prefill and forwards the request to its own decode server
# (llm-d/llm-d-routing-sidecar@78051b86ff13c4511fb1c8c7def56e04b0850b67 internal/proxy/chat_completions.go:31-42).
NO_PREFILL_POD = ("llm-d's scheduler sets no prefiller header when no prefill pod runs, and the routing sidecar then "
                  "sends the request to its decode server, which prefills it")


def read_modelservice_values(doc: SourceDocument, dep: Deployment, target: Target) -> None:
    """llm-d modelservice values: `prefill:`/`decode:` each with containers whose `modelCommand: vllmServe` runs
    `vllm serve <modelArtifacts.name>` with the listed args (llm-d/llm-d-modelservice chart). The chart adds
    flags of its own (port, routing sidecar), which are not in the file."""
    dep.format = "helm-values"
    data = doc.data
    reader = ShellReader(doc.text)
    model = (data.get("modelArtifacts") or {}).get("name") if isinstance(data.get("modelArtifacts"), dict) else None
    labels = (data.get("modelArtifacts") or {}).get("labels") if isinstance(data.get("modelArtifacts"), dict) else None
    for role in ("prefill", "decode"):
        block = data.get(role)
        if not isinstance(block, dict) or block.get("create") is False:
            continue
        tp = (block.get("parallelism") or {}).get("tensor") if isinstance(block.get("parallelism"), dict) else None
        containers = block.get("containers")
        for ci, c in enumerate(containers if isinstance(containers, list) else []):
            if not isinstance(c, dict):
                continue
            base = (role, "containers", ci)
            env = env_from_k8s(doc, base + ("env",), c.get("env"))
            host = Host("pod", f"{role}/{c.get('name', ci)}", f"pod:{doc.path}:{role}")
            wl = {str(k): str(v) for k, v in (labels if isinstance(labels, dict) else {}).items()}
            if c.get("modelCommand") == "custom" and c.get("command"):
                # `custom`: the container's own command and args, as written (llm-d-modelservice@3051935
                # _helpers.tpl:626-640 customModelCommand), a `bash -c` script included
                image = c.get("image") if isinstance(c.get("image"), str) else None
                made = [new_worker(launch.command, path=doc.path, name=f"{role}/{c.get('name', ci)}", host=host, hints=launch.hints + [role],
                                   env=launch.env, target=target, image=image, labels=wl)
                        for launch in container_launches(doc, base, c, env, reader, image)]
            else:
                args = [scalar_arg(doc, base + ("args", i), str(a), reader) for i, a in enumerate(c.get("args") if isinstance(c.get("args"), list) else [])
                        if isinstance(a, (str, int, float))]
                flags, spans, positional = parse_flags(args)
                start = Span(*doc.marks.key((role,)))
                program = "vllm" if str(c.get("modelCommand", "vllmServe")).lower().startswith("vllm") else "image-entrypoint"
                made = [new_worker(Command(program, args, flags, spans, positional, {}, start), path=doc.path, name=f"{role}/{c.get('name', ci)}",
                                   host=host, hints=[role], env=env, target=target, image=c.get("image"), labels=wl)]
            for w in made:
                _modelservice_worker(doc, w, role, block, c, base, model, tp)
                dep.workers.append(w)
    _routing_proxy(doc, dep, target)


def _modelservice_worker(doc: SourceDocument, w, role: str, block: dict, c: dict, base: tuple, model: Any, tp: Any) -> None:
    """What the chart gives every engine of a `prefill:`/`decode:` block: its role, model, parallelism and capacity."""
    w.set_role(role, f"modelservice {role} block", "field")
    if model and "model" not in w.settings:
        w.settings["model"] = Setting(str(model), Span(*doc.marks.value(("modelArtifacts", "name"))), "modelArtifacts.name")
    if tp is not None and "tp" not in w.settings:
        w.settings["tp"] = Setting(tp, Span(*doc.marks.value((role, "parallelism", "tensor"))), "parallelism.tensor")
    w.replicas = Setting(count(block.get("replicas", 1)), Span(*doc.marks.value((role, "replicas"))) if "replicas" in block else None, "replicas")
    w.gpus = gpus_from_resources(doc, base + ("resources",), c.get("resources"))
    w.settings["rdma"] = Setting(rdma_requested(c.get("resources")), None, "resources")
    w.settings["capabilities"] = Setting(None, None, "set by the chart")  # the chart owns securityContext
    w.settings["without_prefill"] = Setting("decode", None, NO_PREFILL_POD)  # the chart runs llm-d's scheduler and sidecar
    w.notes.append("the modelservice chart adds flags and security settings of its own; only what the values set is checked")


def _routing_proxy(doc: SourceDocument, dep: Deployment, target: Target) -> None:
    """The routing sidecar the chart puts in the decode pods, unless `routing.proxy.enabled` is false: a container
    `routing-proxy` run with `--connector={{ .proxy.connector | default "nixlv2" }}`
    (llm-d-incubation/llm-d-modelservice@3051935 charts/llm-d-modelservice/templates/_helpers.tpl:95-101, included by
    decode-deployment.yaml and decode-lws.yaml). Only where the values write the connector: the chart's default is
    its own."""
    data = doc.data
    routing = data.get("routing") if isinstance(data.get("routing"), dict) else {}
    proxy = routing.get("proxy") if isinstance(routing.get("proxy"), dict) else None
    decode = data.get("decode")
    if proxy is None or proxy.get("enabled") is False or not isinstance(decode, dict) or decode.get("create") is False:
        return
    connector = proxy.get("connector")
    if not isinstance(connector, str) or templated(connector):
        return
    at = Span(*doc.marks.value(("routing", "proxy", "connector")))
    args = [Arg("/app/pd-sidecar", Span(*doc.marks.key(("routing", "proxy")))), Arg(f"--connector={connector}", at)]
    flags, spans, positional = parse_flags(args[1:])
    image = proxy.get("image") if isinstance(proxy.get("image"), str) else None
    w = new_worker(Command(pd_sidecar.PROGRAM, args, flags, spans, positional, {}, args[0].span), path=doc.path, name="decode/routing-proxy",
                   host=Host("pod", "decode/routing-proxy", f"pod:{doc.path}:decode/routing-proxy"), hints=[], env={}, target=target, image=image)
    # the value as written (not `--connector=` around it), where the values file writes it; on a network of its own
    # here, since the chart sets both its port and vLLM's (servicePort, proxy.targetPort), which the values may leave out
    w.settings["sidecar_kv_connector"] = Setting(connector, at, "routing.proxy.connector")
    dep.workers.append(w)


def looks_like_router_values(data: Any) -> bool:
    """llm-d router chart values (llm-d >= 0.8): the EPP config under `router.epp`."""
    router = data.get("router") if isinstance(data, dict) else None
    epp = router.get("epp") if isinstance(router, dict) else None
    return isinstance(epp, dict) and ("pluginsCustomConfig" in epp or "pluginsConfigFile" in epp)


# The chart's own config when `pluginsConfigFile` is not set (llm-d/llm-d-router config/charts/routerlib/values.yaml)
ROUTER_DEFAULT_CONFIG = "default-plugins.yaml"


def read_router_values(doc: SourceDocument, dep: Deployment) -> None:
    """The EPP reads the one config `router.epp.pluginsConfigFile` names; the chart writes every string under
    `router.epp.pluginsCustomConfig` beside its built-in ones in the EPP's ConfigMap (llm-d/llm-d-router
    config/charts/routerlib/templates/_config.yaml at 2b244b7). A custom config the EPP does not select is unread."""
    dep.format = "helm-values"
    epp = doc.data["router"]["epp"]
    custom = epp.get("pluginsCustomConfig") if isinstance(epp.get("pluginsCustomConfig"), dict) else {}
    chosen = str(epp.get("pluginsConfigFile", ROUTER_DEFAULT_CONFIG))
    text = custom.get(chosen)
    if not isinstance(text, str):
        return  # a config built into the chart, which the file does not show
    found = embedded_yaml(doc, ("router", "epp", "pluginsCustomConfig", chosen), text)
    if found is None:
        return
    inner, to_file = found
    for d in inner:
        if looks_like_epp(d.data):
            read_epp(d, dep, to_file)
