"""Kubernetes manifests into the deployment model: Deployments, StatefulSets, DaemonSets, Jobs, Pods, LeaderWorkerSets,
llm-d DisaggregatedSets (DynamoGraphDeployments are in `dgd.py`, KServe in `kserve.py`, AIBrix and OME in theirs).

Each pod is its own network; `hostNetwork` pods share one only when pinned to the same node (`nodeName` or a
`kubernetes.io/hostname` selector). A container that passes only `args` runs its image's entrypoint (vLLM images:
`vllm serve`). A LeaderWorkerSet group of `size` N is one engine over N nodes.
"""

from __future__ import annotations

from typing import Any

from ..cmdline import Arg
from ..knowledge.versions import Target
from ..kube_services import mark_pod, pod_of
from ..model import Deployment, Host, Setting, Unknown, Worker
from ..shell import Launch, PStr, ShellReader
from ..source import SourceDocument, Span
from .common import (
    container_launches,
    count,
    env_from_k8s,
    gpus_from_resources,
    new_worker,
    rdma_requested,
)

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


def _host(name: str, pod_spec: dict) -> Host:
    selector = pod_spec.get("nodeSelector") if isinstance(pod_spec.get("nodeSelector"), dict) else {}
    node = pod_spec.get("nodeName") or selector.get("kubernetes.io/hostname")
    if pod_spec.get("hostNetwork"):
        if node:
            return Host("node", str(node), f"node:{node}", str(node))
        return Host("node", f"unpinned:{name}", f"unpinned-host:{name}")
    return Host("pod", name, f"pod:{name}")


def pod_workers(doc: SourceDocument, dep: Deployment, name: str, spec_path: tuple, pod_spec: Any, replicas: Any, target: Target,
                labels: dict[str, str] | None = None, hints: list[str] | None = None, nodes: int = 1, reader: ShellReader | None = None,
                key_bases: dict[int, dict[str, tuple]] | None = None, injected: dict[str, Arg] | None = None) -> list[Worker]:
    """Workers of one pod template (`spec_path` points at the pod spec). `key_bases`: for a container merged from two
    places (a template and a patch), container index -> key -> the path of the container that writes that key.
    `injected`: variables a controller adds to every container that does not set them itself (LeaderWorkerSet's)."""
    if not isinstance(pod_spec, dict):
        return []
    containers = pod_spec.get("containers")
    if not isinstance(containers, list):
        return []
    reader = reader or ShellReader(doc.text)
    host = _host(name, pod_spec)
    at = doc.marks.keys.get(spec_path + ("hostNetwork",)) if host.kind == "node" else None
    if at is not None:
        host = host._replace(decided_at=(at[0], at[1]))
    out: list[Worker] = []
    rep_path = spec_path[:-2] + ("replicas",) if spec_path[-2:] == ("template", "spec") else None
    label_hints = [v for k, v in (labels or {}).items() if "role" in k.lower() or "component" in k.lower()]
    for ci, c in enumerate(containers):
        if not isinstance(c, dict):
            continue
        base = spec_path + ("containers", ci)
        kb = (key_bases or {}).get(ci, {})
        env = {**(injected or {}), **env_from_k8s(doc, kb.get("env", base) + ("env",), c.get("env"))}
        image = c.get("image") if isinstance(c.get("image"), str) else None
        for launch in container_launches(doc, base, c, env, reader, image, key_base=kb):
            w = _worker(doc, launch, f"{name}/{c.get('name', ci)}", host, target, image, labels, label_hints + (hints or []) + [str(c.get("name", ""))])
            w.replicas = _replicas(doc, rep_path, replicas)
            w.gpus = gpus_from_resources(doc, kb.get("resources", base) + ("resources",), c.get("resources"))
            w.nodes = nodes
            w.settings.setdefault("rdma", Setting(rdma_requested(c.get("resources")), None, "resources"))
            sec = c.get("securityContext") if isinstance(c.get("securityContext"), dict) else {}
            caps = sec["capabilities"].get("add") if isinstance(sec.get("capabilities"), dict) else None
            w.settings["capabilities"] = Setting([str(x) for x in caps] if isinstance(caps, list) else [], None, "securityContext")
            out.append(w)
    dep.workers.extend(out)
    return out


def _worker(doc, launch: Launch, name: str, host: Host, target: Target, image, labels, hints) -> Worker:
    w = new_worker(launch.command, path=doc.path, name=name, host=host, hints=launch.hints + hints, env=launch.env, target=target,
                   image=image, labels=labels)
    w.alternative = launch.alternative  # branches of an `sh -c` script
    return w


def _replicas(doc: SourceDocument, path: tuple | None, value: Any) -> Setting:
    n = count(value)
    span = None
    if path is not None and value is not None:
        p = doc.marks.value(path)
        span = Span(*p)
    return Setting(n, span, "replicas")


def _labels(meta: Any) -> dict[str, str]:
    if isinstance(meta, dict) and isinstance(meta.get("labels"), dict):
        return {str(k): str(v) for k, v in meta["labels"].items()}
    return {}


def read_object(doc: SourceDocument, dep: Deployment, target: Target) -> bool:
    """Add the workers of one Kubernetes object; False when the kind holds no serving workload we read."""
    data = doc.data
    kind = str(data.get("kind"))
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    name = str(meta.get("name", kind))
    spec = data.get("spec") if isinstance(data.get("spec"), dict) else {}
    labels = _labels(meta)
    if kind in WORKLOAD_KINDS:
        tmpl = spec.get("template") if isinstance(spec.get("template"), dict) else {}
        ws = pod_workers(doc, dep, name, ("spec", "template", "spec"), tmpl.get("spec"), spec.get("replicas", 1), target,
                         {**labels, **_labels(tmpl.get("metadata"))}, [name])
        mark_pod(ws, pod_of(meta, tmpl.get("metadata"), tmpl.get("spec")))
        if kind == "StatefulSet":  # pods with stable names (`<name>-0.<service>`): the shape of one engine over several nodes
            for w in ws:
                w.set("statefulset", True, None, "kind: StatefulSet")
        return True
    if kind == "Pod":
        mark_pod(pod_workers(doc, dep, name, ("spec",), spec, 1, target, labels, [name]), pod_of(meta, meta, spec))
        return True
    if kind == "LeaderWorkerSet":
        _lws(doc, dep, name, ("spec",), spec, target, labels, [name])
        return True
    if kind == "DisaggregatedSet":
        roles = spec.get("roles") if isinstance(spec.get("roles"), list) else []
        for i, role in enumerate(roles):
            if isinstance(role, dict) and isinstance(role.get("spec"), dict):
                rname = str(role.get("name", i))
                _lws(doc, dep, f"{name}/{rname}", ("spec", "roles", i, "spec"), role["spec"], target, labels, [rname], role_name=rname)
        return True
    return False


def _lws(doc, dep, name, path: tuple, spec: dict, target, labels, hints, role_name: str | None = None) -> None:
    """A LeaderWorkerSet group: when the leader runs the engine, the group is one engine over `size` nodes and the
    worker pods are its other nodes; when the leader runs something else (a proxy), each worker pod is an engine."""
    lwt = spec.get("leaderWorkerTemplate") if isinstance(spec.get("leaderWorkerTemplate"), dict) else {}
    written = count(lwt.get("size", 1))
    size = written if isinstance(written, int) and written > 0 else 1
    # the controller gives every container that does not set it LWS_GROUP_SIZE = the group's size (kubernetes-sigs/lws
    # @060ab4d pkg/utils/pod/pod_utils.go:148-157, addEnvVarsIfNotExists), which `--nnodes=$(LWS_GROUP_SIZE)` reads
    size_at = Span(*doc.marks.value(path + ("leaderWorkerTemplate", "size"))) if "size" in lwt else Span(*doc.marks.key(path + ("leaderWorkerTemplate",))) \
        if "leaderWorkerTemplate" in spec else None
    injected = {"LWS_GROUP_SIZE": Arg(str(size), size_at)} if isinstance(written, int) and written > 0 and size_at is not None else None
    rep_path = path + ("replicas",) if "replicas" in spec else None
    leaders: list[Worker] = []
    for tkey in ("leaderTemplate", "workerTemplate"):
        tmpl = lwt.get(tkey) if isinstance(lwt.get(tkey), dict) else None
        if not tmpl:
            continue
        one_engine = tkey == "leaderTemplate" or any(w.is_engine for w in leaders) or "leaderTemplate" not in lwt
        ws = pod_workers(doc, dep, f"{name}/{tkey}", path + ("leaderWorkerTemplate", tkey, "spec"), tmpl.get("spec"), spec.get("replicas", 1), target,
                         {**labels, **_labels(tmpl.get("metadata"))}, hints + [tkey], size if one_engine else 1, injected=injected)
        for w in ws:
            w.replicas = _replicas(doc, rep_path, spec.get("replicas", 1))
            if role_name in ("prefill", "decode") and w.role_from in ("name", "none", "default") and w.is_engine:
                w.set_role(role_name, f"DisaggregatedSet role {role_name}", "field")
            if tkey == "workerTemplate" and any(x.is_engine for x in leaders):
                # one engine spans the group: the worker pods are its other nodes, not engines of their own
                w.settings["engine_part"] = Setting(True, None, "leaderWorkerTemplate.workerTemplate")
        if tkey == "leaderTemplate":
            leaders = ws


def _empty_state():
    from ..shell import _State

    return _State()


__all__ = ["pod_workers", "read_object", "WORKLOAD_KINDS", "Unknown", "PStr"]
