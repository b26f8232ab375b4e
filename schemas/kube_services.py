"""Kubernetes Services between a P/D proxy and its servers: a proxy pod that names its prefill and decode servers by a
Service's DNS name (`--prefiller-hosts prefill-svc --prefiller-ports 8000`) sends to the pods that Service selects.
Resolved within the files of one run, so that the proxy pairs the prefill and decode workers of other files.

What each step reads, and from where:
* The name: a Service `S` in namespace `N` is `S.N.svc.<cluster domain>`; a pod's DNS search list holds its own
  namespace and the cluster domain, so a pod of namespace `N` reaches it as `S`, any pod as `S.N` (kubernetes/website@
  0189ae0f6bf2a79ff2e4bfd5f9ec0da98d64c5d2 content/en/docs/concepts/services-networking/dns-pod-service.md, "What things
  get DNS names?" and "A/AAAA records"). Only with dnsPolicy ClusterFirst (the default), or ClusterFirstWithHostNet on a
  hostNetwork pod: with `Default` (a hostNetwork pod under ClusterFirst falls back to it) or `None` the pod does not
  search the cluster's names (same page, "Pod's DNS Policy").
* The pods: a Service sends to the pods in its namespace whose labels hold every pair of its `spec.selector`; a
  Service without a selector has no pods of its own. A request to the Service's `port` goes to the pod's
  `targetPort` (a number, or the name of a container port of the pod; the `port` when unset). A Deployment's (or
  StatefulSet's, Job's, ...) pods carry its pod template's labels, in the object's namespace; a namespace the
  manifest leaves unset is the one it is applied to, the same for files applied together, so two unset namespaces
  match and an unset one never matches a written one.
* The proxy: vLLM's toy proxy (vllm-project/tpu-inference@b8692ff01fa191343836996c27a39dc95f008b88
  examples/disagg/toy_proxy_server.py:84-128, as vllm-project/vllm's tests/v1/kv_connector/nixl_integration/
  toy_proxy_server.py) zips `--prefiller-hosts` (alias `--prefiller-host`, `nargs="+"`) with `--prefiller-ports` and
  `--decoder-hosts` with `--decoder-ports`, and sends each request's prefill to `http://HOST:PORT` of a prefiller and
  its decode to one of a decoder. A list of unequal lengths is refused there: nothing is paired from it here.
* The engine's port: its `--port`, else vLLM's default 8000 (vllm-project/vllm@005223338608bc94fd165a4f976c102a57bd1fc4
  vllm/entrypoints/openai/cli_args.py FrontendArgs.port).
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

from .labels import holds
from .model import Deployment, Pair, Setting, Worker, is_loopback

VLLM_HTTP_PORT = "8000"
_ENGINE_PORT = {"vllm": VLLM_HTTP_PORT}  # program -> default HTTP port of the servers the toy proxy names


class Pod(NamedTuple):
    """What a Service's selection and a pod's name lookups read of a pod template."""

    namespace: str | None
    labels: tuple[tuple[str, str], ...]
    named_ports: tuple[tuple[str, str], ...]  # container port name -> number, over the pod's containers
    cluster_dns: bool  # the pod resolves Service names (dnsPolicy)


class Service(NamedTuple):
    name: str
    namespace: str | None
    selector: tuple[tuple[str, str], ...]
    ports: tuple[tuple[str, str], ...]  # (port, targetPort as written: a number or a container port's name)
    path: str


def pod_of(meta: Any, template_meta: Any, pod_spec: Any) -> Pod:
    """The pod a workload's template (or a Pod object: `template_meta` is its own metadata) makes."""
    ns = meta.get("namespace") if isinstance(meta, dict) else None
    labels = template_meta.get("labels") if isinstance(template_meta, dict) else None
    spec = pod_spec if isinstance(pod_spec, dict) else {}
    named: list[tuple[str, str]] = []
    containers = spec.get("containers")
    for c in containers if isinstance(containers, list) else ():
        for p in c.get("ports") if isinstance(c, dict) and isinstance(c.get("ports"), list) else ():
            if isinstance(p, dict) and p.get("name") is not None and p.get("containerPort") is not None:
                named.append((str(p["name"]), str(p["containerPort"])))
    policy = str(spec.get("dnsPolicy", "ClusterFirst"))
    host_net = spec.get("hostNetwork") is True
    dns = policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not host_net)
    return Pod(str(ns) if ns is not None else None, tuple((str(k), str(v)) for k, v in (labels or {}).items()) if isinstance(labels, dict) else (),
               tuple(named), dns)


def read_service(data: dict, path: str) -> Service | None:
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    spec = data.get("spec") if isinstance(data.get("spec"), dict) else {}
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not selector or meta.get("name") is None:
        return None  # no selector: its endpoints are set by hand, not pods of these files
    ports = []
    for p in spec.get("ports") if isinstance(spec.get("ports"), list) else ():
        if isinstance(p, dict) and p.get("port") is not None:
            ports.append((str(p["port"]), str(p.get("targetPort", p["port"]))))
    ns = meta.get("namespace")
    return Service(str(meta["name"]), str(ns) if ns is not None else None, tuple((str(k), str(v)) for k, v in selector.items()),
                   tuple(ports), path)


def proxies_by_name(dep: Deployment) -> bool:
    """The file holds a toy proxy in a pod that names a server by something other than an IP or loopback address."""
    return any(_named(w) for w in dep.workers)


def _named(w: Worker) -> bool:
    if w.program != "vllm-proxy" or not isinstance(w.known("kube_pod"), Pod):
        return False
    return any(_service_name(h, None) is not None for key in ("proxy_prefill_hosts", "proxy_decode_hosts") for h in str(w.known(key, "")).split())


def _service_name(host: str, own_ns: str | None) -> tuple[str, str | None] | None:
    """(Service, namespace) a host name stands for in a pod of namespace `own_ns`; None for an address or loopback."""
    host = host.strip().rstrip(".")
    if not host or is_loopback(host) or host == "0.0.0.0" or "$" in host or "[" in host or ":" in host:
        return None
    parts = host.split(".")
    if all(p.isdigit() for p in parts) or any(not p for p in parts):
        return None
    if len(parts) == 1:
        return parts[0], own_ns
    if len(parts) == 2 or parts[2] == "svc":
        return parts[0], parts[1]
    return None  # a name outside the cluster's Services


def routed(deps: list[Deployment], lonely_p: list[Worker], lonely_d: list[Worker]) -> list[Pair]:
    """Prefill and decode workers of different files that a toy proxy of their folder reaches through Services."""
    proxies = [w for dep in deps for w in dep.workers if _named(w)]
    if not proxies:
        return []
    services = [s for dep in deps for s in dep.services]
    pairs = []
    for proxy in proxies:
        own: Pod = proxy.known("kube_pod")
        if not own.cluster_dns:
            continue
        named: dict[str, list[tuple[Worker, str]]] = {}
        for role, key, ports_key, pool in (("prefill", "proxy_prefill_hosts", "proxy_prefill_ports", lonely_p),
                                            ("decode", "proxy_decode_hosts", "proxy_decode_ports", lonely_d)):
            hosts, ports = str(proxy.known(key, "")).split(), str(proxy.known(ports_key, "")).split()
            if len(hosts) != len(ports):
                continue
            named[role] = [(w, f"{h}:{p}") for h, p in zip(hosts, ports) for w in _behind(h, p, own, proxy, services, pool, role)]
        for d, d_at in named.get("decode", ()):
            for p, p_at in named.get("prefill", ()):
                if d.path != p.path:
                    pairs.append(Pair(d, p, f"the proxy {proxy.name} in {os.path.basename(proxy.path)} sends prefill to Service {p_at} "
                                            f"and decode to Service {d_at}"))
    return pairs


def _behind(host: str, port: str, own: Pod, proxy: Worker, services: list[Service], pool: list[Worker], role: str) -> list[Worker]:
    """The workers of `pool` that the Service `host` sends `port` to, in the proxy's folder."""
    ref = _service_name(host, own.namespace)
    if ref is None:
        return []
    folder = os.path.dirname(proxy.path)
    out = []
    for svc in services:
        if (svc.name, svc.namespace) != ref or os.path.dirname(svc.path) != folder:
            continue
        for svc_port, target in svc.ports:
            if svc_port != port:
                continue
            for w in pool:
                pod = w.known("kube_pod")
                if not isinstance(pod, Pod) or w.role != role or os.path.dirname(w.path) != folder or pod.namespace != svc.namespace:
                    continue
                if not holds(dict(pod.labels), dict(svc.selector)):
                    continue
                number = dict(pod.named_ports).get(target, target)
                if w.program in _ENGINE_PORT and str(w.known("port", _ENGINE_PORT[w.program])) == number:
                    out.append(w)
    return out


def mark_pod(workers: list[Worker], pod: Pod) -> None:
    for w in workers:
        w.settings["kube_pod"] = Setting(pod, None, "pod template")
