"""Roles that the serving system itself assigns from outside the engine's command line: the router or proxy that sends
prefill or decode traffic to an address, the scheduler label that admits a pod to the prefill or decode pool, and
what Dynamo's worker does when it is given no role flag. Each is system-read (`Worker.role_from`), so it replaces a
role that only a name suggested; an engine's own role flag is never overridden, but where a router sends the other
kind of traffic to it, `routed_as` records that for the rule that reports the contradiction (DG107).

Sources:
* llm-d: the scheduler's prefill and decode filters admit pods by the label `llm-d.ai/role` = prefill | decode | both
  (llm-d/llm-d-inference-scheduler pkg/plugins/filter, `RoleLabel`).
* SGLang: `python -m sglang_router.launch_router --pd-disaggregation --prefill URL [BOOTSTRAP_PORT] --decode URL`
  sends each request's prefill to a --prefill server and its decode to a --decode server (sgl-project/sglang
  sgl-router, the PD router's `--prefill`/`--decode` arguments).
* vLLM's toy proxies: `--prefiller-ports` / `--decoder-ports` (vllm-project/vllm tests/v1/kv_connector/nixl_integration/
  toy_proxy_server.py).
* Dynamo: `python -m dynamo.vllm` without a role flag registers as the `backend` component, which the frontend treats
  as the decode side of prefill workers (ai-dynamo/dynamo components/src/dynamo/vllm/args.py
  `update_dynamo_config_with_engine`, commit 000a36a); `dynamo.sglang` serves decode unless its serving mode is
  prefill (components/src/dynamo/sglang/main.py, commit 01f72ab).
"""

from __future__ import annotations

import re

from .labels import parse_label_selector, selects
from .model import Deployment, Setting, Worker, is_loopback

_REPLACEABLE = ("name", "none", "default")  # a role that a system-read source may replace
LLMD_ROLE_LABEL = "llm-d.ai/role"
SGLANG_DEFAULT_PORT = "30000"  # sglang ServerArgs.port


def link_roles(dep: Deployment) -> None:
    """Every system-read role that comes from outside a worker's own command, in one pass after a file is read."""
    _label_roles(dep)
    _proxy_ports(dep)
    _router_urls(dep)
    _router_selectors(dep)
    _model_label_routes(dep)
    _dynamo_default(dep)


def _label_roles(dep: Deployment) -> None:
    for w in dep.workers:
        value = w.labels.get(LLMD_ROLE_LABEL, "").strip().lower()
        role = {"prefill": "prefill", "decode": "decode", "both": "aggregated"}.get(value)
        if role and w.is_engine and w.role_from in _REPLACEABLE:
            w.set_role(role, f"label {LLMD_ROLE_LABEL}: {value}", "field")


def _proxy_ports(dep: Deployment) -> None:
    """vLLM's toy proxy names its prefill and decode instances by port."""
    for proxy in dep.of_role("proxy"):
        for flag, role in (("prefiller-ports", "prefill"), ("decoder-ports", "decode"), ("prefiller-port", "prefill"), ("decoder-port", "decode")):
            s = proxy.settings.get("proxy_prefill_ports" if role == "prefill" else "proxy_decode_ports") if flag in proxy.flags else None
            s = s if s is not None else proxy.flags.get(flag)  # every port after the flag (nargs="+"), where the command shows them
            if s is None or not s.known:
                continue
            ports = set(str(s.value).replace(",", " ").split())
            for w in dep.workers:
                if w.is_engine and str(w.known("port", "")) in ports:
                    _route(w, role, f"the proxy's --{flag}", s)


def url_names_server(router: Worker, url: str, w: Worker, default_port: str) -> bool | None:
    """Whether a router URL names server `w` (True/False), or None when the URL does not say (its port or host set
    at run time). It names it only on the router's own network: a loopback address, `0.0.0.0`, no host, or the address
    the server itself binds (another address may be another machine with the same port), and the server's port."""
    host, port = _host_port(url)
    if port is None:
        return None
    here = local_host(host) or (w.flags.get("host") is not None and host == str(w.flags["host"].value))
    return here and w.host.network == router.host.network and str(w.known("port", default_port)) == port


def local_url(url: str) -> bool:
    """A URL that names the machine it is used on: no host, a loopback address or `0.0.0.0`."""
    return local_host(_host_port(url)[0])


def local_host(host: str | None) -> bool:
    return host is None or is_loopback(host) or host == "0.0.0.0"


def _router_urls(dep: Deployment) -> None:
    """SGLang's PD router: each `--prefill URL` / `--decode URL` names a server on this host by its port."""
    for router in dep.workers:
        if router.program not in ROUTED_ENGINE:
            continue
        engine, default_port = ROUTED_ENGINE[router.program]
        for key, role in (("router_prefill", "prefill"), ("router_decode", "decode")):
            s = router.settings.get(key)
            if s is None or not isinstance(s.value, list):
                continue
            for url, span in s.value:
                for w in dep.workers:
                    if w.engine == engine and w.is_engine and url_names_server(router, url, w, default_port):
                        _route(w, role, f"the router's {s.origin} {url}", Setting(url, span, s.origin))


def _router_selectors(dep: Deployment) -> None:
    """SGLang's PD router with Kubernetes service discovery: each `--prefill-selector` / `--decode-selector` names the
    pods whose labels hold every key=value term. A value set from the router's environment (`$STORM_SERVICE_NAME`)
    is read from it; one it cannot read leaves the selector unmatched (unknown, not a guess)."""
    for router in dep.workers:
        if router.program != "sglang-router":
            continue
        for role in ("prefill", "decode"):
            s = router.settings.get(f"router_{role}_selector")
            if s is None or not isinstance(s.value, list):
                continue
            pairs = [(k, _from_env(router, v)) for k, v in s.value]
            if any(v is None for _, v in pairs):
                continue
            terms = [(k, "in", frozenset({v})) for k, v in pairs]
            for w in dep.workers:
                if w.engine == "sglang" and w.is_engine and w.labels and selects(terms, w.labels):
                    shown = " ".join(f"{k}={v}" for k, v in pairs)
                    _route(w, role, f"the router's {s.origin} {shown} (its pod labels)", s)


def _from_env(w: Worker, value: str) -> str | None:
    """`value` with a `$NAME` / `${NAME}` taken from the worker's environment; None when it cannot be read."""
    m = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", value)
    if m is None:
        return None if "$" in value else value
    s = w.env.get(m.group(1))
    return str(s.value) if s is not None and isinstance(s.value, str) and "$" not in s.value else None


def _model_label_routes(dep: Deployment) -> None:
    """production-stack's router in a P/D routing logic with Kubernetes discovery: the vLLM pods its label selector
    finds, by their `model` label (router_args.model_label_routing)."""
    for _, w, role, evidence in label_routed(dep.workers, dep.workers):
        _route(w, role, f"production-stack's router: {evidence.origin} {','.join(evidence.value)} (the pod's label model={w.labels.get('model')})", evidence)
    for router in dep.workers:
        note_label_gaps(router, dep.workers)


LABEL_GAPS = "label_gaps"  # the router setting DG108 reads


def note_label_gaps(router: Worker, servers: list[Worker]) -> None:
    """On a production-stack router: each side (prefill, decode) whose model labels pick none of the vLLM pods its
    selector finds among `servers`, while some of those pods carry a model label neither side names (a pod meant for
    that side, labelled otherwise). Kept as plain values (name, path, line, column, label) under LABEL_GAPS."""
    read = _label_router(router)
    if read is None:
        return
    terms, lists = read
    if len(lists) < 2:
        return
    found = [w for w in servers if w.engine == "vllm" and w.is_engine and w.span is not None and selects(terms, w.labels)]
    named = {v for s in lists.values() for v in s.value}
    stray = [w for w in found if w.labels.get("model") not in named]
    # with a selector of its own the router says which pods are its; without one it finds every pod of its namespace
    gaps = [(role, [(w.name, w.path, w.span.line, w.span.column, str(w.labels.get("model"))) for w in stray], bool(terms))
            for role, s in lists.items() if stray and not any(w.labels.get("model") in s.value for w in found)]
    router.settings.pop(LABEL_GAPS, None)  # asked again with more files (the router's folder): the wider answer stands
    if gaps:
        router.settings[LABEL_GAPS] = Setting(gaps, None, "the pods it discovers in the files read")


def label_routed(routers, servers):
    """(router, server, role, the router's label setting) for every vLLM server a production-stack router sends P/D
    traffic to by its pod's `model` label, among `servers` (those its `--k8s-label-selector` also selects)."""
    for router in routers:
        read = _label_router(router)
        if read is None:
            continue
        terms, lists = read
        for role, s in lists.items():
            for w in servers:
                if w.engine == "vllm" and w.is_engine and w.labels.get("model") in s.value and selects(terms, w.labels):
                    yield router, w, role, s


def _label_router(router: Worker) -> tuple[list, dict[str, Setting]] | None:
    """A production-stack router in a P/D routing logic with Kubernetes discovery, as (its label selector's terms, the
    side -> its model-label setting, for each side whose labels are read); None for any other worker, or one whose
    selector is not read (which pods it finds is then not known)."""
    from .router_args import PD_ROUTING_LOGICS

    if router.program != "vllm-router" or router.known("routing_logic") not in PD_ROUTING_LOGICS or router.known("service_discovery") != "k8s":
        return None
    selector = router.settings.get("k8s_label_selector")
    terms = parse_label_selector(str(selector.value)) if selector is not None else []
    if terms is None:
        return None
    lists = {role: s for role in ("prefill", "decode") if (s := router.settings.get(f"router_{role}_labels")) is not None
             and isinstance(s.value, list) and not any("$" in v for v in s.value)}
    return terms, lists


# router program -> (the engine its URLs name, that engine's default HTTP port). TensorRT-LLM's disaggregated router
# sends context requests to `context_servers.urls` and generation requests to `generation_servers.urls`
# (tensorrt_llm/llmapi/disagg_utils.py extract_ctx_gen_cfgs, NVIDIA/TensorRT-LLM at 0228a71223416496ff056a157936bad2e42c762f);
# trtllm-serve's --port defaults to 8000 (tensorrt_llm/commands/serve.py).
ROUTED_ENGINE = {"sglang-router": ("sglang", SGLANG_DEFAULT_PORT), "trtllm-disagg-server": ("trtllm", "8000")}


def _route(w: Worker, role: str, why: str, evidence: Setting) -> None:
    w.settings["routed_as"] = Setting(role, evidence.span, why)
    if w.role_from in _REPLACEABLE:
        w.set_role(role, why, "router")


def _host_port(url: str) -> tuple[str | None, str | None]:
    m = re.match(r"^(?:[a-z]+://)?(\[[^\]]*\]|[^:/]*)(?::(\d+))?", url.strip())
    if not m or "$" in url:
        return None, None
    return (m.group(1) or None), m.group(2)


def _dynamo_default(dep: Deployment) -> None:
    """A `python -m dynamo.*` worker with no role flag, beside prefill workers of the same program, is their decode
    side: Dynamo's vLLM and SGLang workers serve decode and send prefills to the prefill workers they find (from 1.3
    dynamo.vllm registers as aggregated instead, which DG604 reports). That is what the system does only when the
    prefill workers are flagged; beside workers that are prefill by their name alone, it stays a guess."""
    for w in dep.workers:
        if not (w.program.startswith("dynamo.") and w.engine is not None) or has_role_flag(w):
            continue
        if w.role_from not in _REPLACEABLE or w.role not in ("unknown", "decode"):
            continue
        prefill = [p for p in dep.workers if p.role == "prefill" and p.program == w.program]
        if not prefill:
            continue
        if w.program in ("dynamo.vllm", "dynamo.sglang") and any(p.role_from == "flag" for p in prefill):
            w.set_role("decode", f"{w.program} with no role flag beside prefill workers", "default")
        elif w.role == "unknown":
            w.set_role("decode", f"{w.program} with no role flag beside workers named prefill", "name")


def has_role_flag(w: Worker) -> bool:
    """The engine was given its role on its own command line or environment."""
    return "disaggregation_mode" in w.settings or "is-prefill-worker" in w.flags or "is-decode-worker" in w.flags


def flags_hidden(w: Worker) -> str | None:
    """Why the engine's flags may hold a role flag the file does not show (`$EXTRA_ARGS` set at run time), or None."""
    s = w.settings.get("opaque_args")
    return None if s is None else s.value.reason
