"""Dynamo's DynamoGraphDeployment into the deployment model: `nvidia.com/v1alpha1` (`spec.services`, a
`mainContainer` per service, `componentType: main` with the whole command in one `args` string) and `v1beta1`
(`spec.components[]` with a full `podTemplate`); a Dynamo v0 config embedded in `DYN_DEPLOYMENT_CONFIG` is read too.
"""

from __future__ import annotations

from typing import Any

from .. import knowledge
from ..knowledge.versions import Evidence, Target
from ..model import Deployment, Host, Setting, Worker
from ..shell import ShellReader
from ..source import SourceDocument, Span
from .common import container_launches, count, env_from_k8s, gpus_from_resources, new_worker, rdma_requested
from .kube import pod_workers

# Which Dynamo namespace a DGD component registers in (discovery is scoped by it). The operator computes it
# (ai-dynamo/dynamo deploy/operator/api/v1alpha1/dynamocomponentdeployment_types.go, ComputeDynamoNamespace, and the
# v1beta1 DynamoGraphDeployment.GetDynamoNamespaceForComponent): `globalDynamoNamespace: true` -> "dynamo", else
# "{k8s namespace}-{DGD name}"; the v1alpha1 `dynamoNamespace` field is not read there. Older operators read it
# instead (deploy/cloud/operator/internal/dynamo/graph.go GenerateDynamoComponentsDeployments at
# ai-dynamo/dynamo@010c68fa39cf2e0820721849c47b19a5b4f0e393: default "dynamo-{DGD name}", and a graph whose
# components resolve to different namespaces is refused with "namespace mismatch for component ...").
GLOBAL_DYNAMO_NAMESPACE = "dynamo"

_ROLE_TYPES = {"prefill": "prefill", "decode": "decode", "frontend": "frontend", "planner": "planner", "main": None, "worker": None}


def read(doc: SourceDocument, dep: Deployment, target: Target) -> None:
    data = doc.data
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    graph = str(meta.get("name", "graph"))
    spec = data.get("spec") if isinstance(data.get("spec"), dict) else {}
    dep.format = "dynamo-graph"
    if str(data.get("apiVersion", "")).strip() == "nvidia.com/v1beta1":
        fact = knowledge.fact("dynamo.dgd_v1beta1")
        target.add(Evidence("dynamo", fact.releases, "a v1beta1 DynamoGraphDeployment (operators from 1.2.0 on)"))
    reader = ShellReader(doc.text)
    graph_env = env_from_k8s(doc, ("spec", "envs"), spec.get("envs"))
    _embedded(doc, dep, graph_env, spec.get("envs"), ("spec", "envs"), target)
    services = spec.get("services")
    if isinstance(services, dict):
        for sname, svc in services.items():
            if isinstance(svc, dict):
                _service(doc, dep, graph, str(sname), ("spec", "services", sname), svc, graph_env, target, reader)
    components = spec.get("components")
    if isinstance(components, list):
        for i, comp in enumerate(components):
            if isinstance(comp, dict):
                _component(doc, dep, graph, i, comp, target, reader)
    _planner(doc, dep, services, components)


def _planner(doc: SourceDocument, dep: Deployment, services: Any, components: Any) -> None:
    """A Planner component sets the workers' replica counts at run time: the written counts are where it starts."""
    found = [("spec", "services", n) for n, s in (services or {}).items() if isinstance(s, dict) and str(s.get("componentType", "")).lower() == "planner"] \
        if isinstance(services, dict) else []
    found += [("spec", "components", i) for i, c in enumerate(components or []) if isinstance(c, dict)
              and str(c.get("type", c.get("componentType", ""))).lower() == "planner"] if isinstance(components, list) else []
    if found:
        for w in dep.workers:
            w.settings.setdefault("autoscaled", Setting(None, Span(*doc.marks.key(found[0])), "Planner"))


def _service(doc, dep, graph, sname, base, svc, graph_env, target, reader) -> None:
    env = dict(graph_env)
    env.update(env_from_k8s(doc, base + ("envs",), svc.get("envs")))
    _embedded(doc, dep, env, svc.get("envs"), base + ("envs",), target)
    pod = svc.get("extraPodSpec") if isinstance(svc.get("extraPodSpec"), dict) else {}
    main = pod.get("mainContainer") if isinstance(pod.get("mainContainer"), dict) else {}
    env.update(env_from_k8s(doc, base + ("extraPodSpec", "mainContainer", "env"), main.get("env")))
    ctype = str(svc.get("componentType", "")).lower()
    sub = str(svc.get("subComponentType", "")).lower()
    image = main.get("image") if isinstance(main.get("image"), str) else None
    multinode = svc.get("multinode") if isinstance(svc.get("multinode"), dict) else {}
    nodes = count(multinode.get("nodeCount", 1))
    host = Host("pod", f"{graph}/{sname}", f"pod:{graph}/{sname}")
    namespace = _namespace(doc, base, svc, meta_ns(doc), graph)
    found = False
    for launch in container_launches(doc, base + ("extraPodSpec", "mainContainer"), main, env, reader, image, default_shell=True):
        if launch.command.program == "dynamo-serve":
            continue  # a Dynamo SDK service: read from the embedded DYN_DEPLOYMENT_CONFIG, or by `_dynamo_serve` below
        found = True
        w = new_worker(launch.command, path=doc.path, name=sname, host=host, hints=launch.hints + [sname], env=launch.env,
                       target=target, image=image)
        _dgd_fields(doc, w, base, svc, sub, nodes, namespace, graph)
        dep.workers.append(w)
    if not found and ctype == "frontend":
        # A frontend with no command runs the image's default: dynamo.frontend
        p = doc.marks.key(base)
        w = Worker(sname, "frontend", "componentType frontend", "dynamo.frontend", None, "dynamo", doc.path, Span(*p), target.copy(), host, role_from="field")
        from .common import image_evidence

        image_evidence(w.target, image)
        _namespace_fields(doc, w, base, svc, namespace, graph)
        dep.workers.append(w)
    elif not found and _dynamo_serve(main) is not None and not any(w.name == sname for w in dep.workers):
        # (a service whose section the embedded DYN_DEPLOYMENT_CONFIG holds is read from there)
        graph_ref, config_file, at = _dynamo_serve(main)
        where = base + ("extraPodSpec", "mainContainer") + at
        w = Worker(sname, "unknown", f"`dynamo serve {graph_ref}`: the graph's code decides", "dynamo-serve", None, "dynamo", doc.path,
                   Span(*doc.marks.value(where)), target.copy(), host, role_from="none")
        shown = f" and its config {config_file}, a file in the image" if config_file else ""
        w.notes.append(f"`dynamo serve {graph_ref}` runs a service of a Dynamo SDK graph: its role and engine options come from the "
                       f"graph's code{shown}, which are not in this file")
        from .common import image_evidence

        image_evidence(w.target, image)
        _dgd_fields(doc, w, base, svc, sub, nodes, namespace, graph)
        dep.workers.append(w)
    elif not found and ctype in ("worker", "main") and sub in ("prefill", "decode"):
        p = doc.marks.key(base)
        w = Worker(sname, sub, f"subComponentType {sub}", "image-entrypoint", None, "dynamo", doc.path, Span(*p), target.copy(), host, role_from="field")
        w.notes.append("the command comes from the image's entrypoint, which the file does not show")
        _namespace_fields(doc, w, base, svc, namespace, graph)
        dep.workers.append(w)


def _dynamo_serve(main: dict) -> tuple[str, str | None, tuple] | None:
    """(graph reference, config file, where the reference is written) of a container that runs `dynamo serve
    MODULE:SERVICE [-f FILE]`, Dynamo 0.1-0.3's SDK command (its `graph` argument and `-f/--config-file` option:
    bytedance-iaas/dynamo deploy/sdk/src/dynamo/sdk/cli/serve.py at 1704b126f33b9263d4031081acef234fa0391337), or None."""
    words: list[tuple[str, tuple]] = []
    for key in ("command", "args"):
        value = main.get(key)
        if isinstance(value, list):
            words += [(str(v), (key, i)) for i, v in enumerate(value) if isinstance(v, (str, int, float))]
    texts = [t for t, _ in words]
    if len(texts) < 3 or texts[0].rsplit("/", 1)[-1] != "dynamo" or texts[1] != "serve" or ":" not in texts[2]:
        return None
    config = next((texts[i + 1] for i in range(3, len(texts) - 1) if texts[i] in ("-f", "--config-file")), None)
    return texts[2], config, words[2][1]


def meta_ns(doc) -> str:
    meta = doc.data.get("metadata") if isinstance(doc.data.get("metadata"), dict) else {}
    ns = meta.get("namespace")
    return str(ns) if isinstance(ns, str) and ns else "<namespace>"


def _namespace(doc, base: tuple, comp: dict, k8s_ns: str, graph: str) -> str:
    """The Dynamo namespace the operator gives a component (see GLOBAL_DYNAMO_NAMESPACE)."""
    return GLOBAL_DYNAMO_NAMESPACE if comp.get("globalDynamoNamespace") is True else f"{k8s_ns}-{graph.replace('.', '-')}"


def _namespace_fields(doc, w: Worker, base: tuple, comp: dict, namespace: str, graph: str) -> None:
    """`globalDynamoNamespace` and the v1alpha1 `dynamoNamespace` as the worker's settings, with where they are written."""
    if w.settings.get("namespace") is None:  # the process's own --namespace / DYN_NAMESPACE, when written, is what it uses
        w.namespace = namespace
        if "globalDynamoNamespace" in comp:
            w.set("dgd_namespace", namespace, Span(*doc.marks.value(base + ("globalDynamoNamespace",))), "globalDynamoNamespace")
    if base[:2] == ("spec", "services"):  # v1alpha1: what operators that read dynamoNamespace use (default dynamo-{graph})
        value = comp.get("dynamoNamespace")
        span = Span(*doc.marks.value(base + ("dynamoNamespace",))) if "dynamoNamespace" in comp else None
        w.set("dynamo_namespace_field", str(value) if value else f"dynamo-{graph}", span, "dynamoNamespace")


def _dgd_fields(doc, w: Worker, base: tuple, svc: dict, sub: str, nodes, namespace: str, graph: str) -> None:
    if sub in ("prefill", "decode") and w.role_from in ("name", "none", "default"):
        w.set_role(sub, f"subComponentType {sub}", "field")
    elif sub in ("prefill", "decode"):
        # the engine's own flag decides its role; the field is what the operator labels the pods with and the planner
        # scales the service by (DG107 compares them)
        w.set("sub_component_type", sub, Span(*doc.marks.value(base + ("subComponentType",))), "subComponentType")
    if "replicas" in svc:
        w.replicas = Setting(count(svc.get("replicas")), Span(*doc.marks.value(base + ("replicas",))), "replicas")
    _autoscaled(doc, w, base, svc)
    w.gpus = gpus_from_resources(doc, base + ("resources",), svc.get("resources"))
    w.nodes = nodes if isinstance(nodes, int) and nodes > 0 else 1
    w.settings.setdefault("rdma", Setting(rdma_requested(svc.get("resources")), None, "resources"))
    _namespace_fields(doc, w, base, svc, namespace, graph)


def _component(doc, dep, graph, i, comp, target, reader) -> None:
    """v1beta1: `components[]` with a full pod template."""
    name = str(comp.get("name", i))
    ctype = str(comp.get("type", comp.get("componentType", ""))).lower()
    tmpl = comp.get("podTemplate") if isinstance(comp.get("podTemplate"), dict) else {}
    workers = pod_workers(doc, dep, f"{graph}/{name}", ("spec", "components", i, "podTemplate", "spec"), tmpl.get("spec"), comp.get("replicas", 1),
                          target, hints=[ctype, name], reader=reader)
    base = ("spec", "components", i)
    multinode = comp.get("multinode") if isinstance(comp.get("multinode"), dict) else {}
    nodes = count(multinode.get("nodeCount", 1))
    for w in workers:
        if "replicas" in comp:
            w.replicas = Setting(count(comp["replicas"]), Span(*doc.marks.value(base + ("replicas",))), "replicas")
        if isinstance(nodes, int) and nodes > 1:
            w.nodes = nodes
        _autoscaled(doc, w, base, comp)
        role = _ROLE_TYPES.get(ctype)
        if role in ("prefill", "decode") and w.role_from in ("name", "none", "default"):
            w.set_role(role, f"component type {ctype}", "field")
        _namespace_fields(doc, w, ("spec", "components", i), comp, _namespace(doc, ("spec", "components", i), comp, meta_ns(doc), graph), graph)
        w.name = name


def _autoscaled(doc: SourceDocument, w: Worker, base: tuple, svc: dict) -> None:
    """`scalingAdapter` (an external autoscaler owns `replicas`) or v1alpha1 `autoscaling.enabled`: the written replica
    count is where scaling starts, and `autoscaling.minReplicas` its floor (ai-dynamo/dynamo deploy/operator/api
    v1beta1 dynamocomponentdeployment_types.go, `replicas` and `scalingAdapter`)."""
    auto = svc.get("autoscaling") if isinstance(svc.get("autoscaling"), dict) else {}
    if "scalingAdapter" in svc:
        w.settings["autoscaled"] = Setting(None, Span(*doc.marks.key(base + ("scalingAdapter",))), "scalingAdapter")
    elif auto.get("enabled") is True:
        floor = count(auto["minReplicas"]) if "minReplicas" in auto else None
        where = base + ("autoscaling", "minReplicas") if "minReplicas" in auto else base + ("autoscaling",)
        w.settings["autoscaled"] = Setting(floor, Span(*(doc.marks.value(where) if "minReplicas" in auto else doc.marks.key(where))), "autoscaling")


def _embedded(doc: SourceDocument, dep: Deployment, env: dict, raw_env: Any, base: tuple, target: Target) -> None:
    """A Dynamo v0 service config passed in DYN_DEPLOYMENT_CONFIG / DYNAMO_SERVICE_CONFIG: read it as a v0 file."""
    if not isinstance(raw_env, list):
        return
    for i, item in enumerate(raw_env):
        if not (isinstance(item, dict) and item.get("name") in ("DYN_DEPLOYMENT_CONFIG", "DYNAMO_SERVICE_CONFIG") and isinstance(item.get("value"), str)):
            continue
        from . import dynamo_v0
        from .embedded import rendered, v0_document
        from .helm import literal_text

        inner = v0_document(doc, base + (i, "value"), item["value"], literal_text if "{{" in item["value"] else None)
        if inner is None:
            continue
        sub = dynamo_v0.read(inner, target, rendered)
        for w in sub.workers:
            w.path = doc.path
            w.notes.append("read from the Dynamo v0 config in " + item["name"])
            w.section = None  # fixes cannot edit inside the JSON string
            dep.workers.append(w)
        dep.issues.extend(i for i in sub.issues if i.kind == "false_dropped")
