"""What a router or proxy is told about its servers, read from its command line: SGLang's PD router's `--prefill` /
`--decode` URLs and, with Kubernetes service discovery, its label selectors; vLLM's toy proxy's port and host lists.
schemas/roles.py turns these into the roles of the servers they name."""

from __future__ import annotations

from .cmdline import Command
from .model import Setting, Worker


def proxy_port_lists(w: Worker, cmd: Command) -> None:
    """vLLM's toy proxy takes every port after one `--prefiller-ports` / `--decoder-ports` (`nargs="+"`, vllm-project/vllm
    tests/v1/kv_connector/nixl_integration/toy_proxy_server.py, as in ROCm/vllm at f8c9a385233a8e1f724411785a1c326006640df5):
    all of them under `proxy_prefill_ports` / `proxy_decode_ports` (the flag table keeps only the first); the hosts
    after `--prefiller-hosts` / `--decoder-hosts` likewise, zipped with the ports (schemas/kube_services.py)."""
    words = cmd.args
    for key, names in (("proxy_prefill_ports", ("--prefiller-ports", "--prefiller-port")), ("proxy_decode_ports", ("--decoder-ports", "--decoder-port")),
                       ("proxy_prefill_hosts", ("--prefiller-hosts", "--prefiller-host")), ("proxy_decode_hosts", ("--decoder-hosts", "--decoder-host"))):
        ports: list[str] = []
        for i, a in enumerate(words):
            name, eq, value = a.text.partition("=")
            if name not in names:
                continue
            if eq:
                ports.append(value)
                continue
            j = i + 1
            while j < len(words) and not words[j].text.startswith("-"):
                ports.append(words[j].text)
                j += 1
        if ports:
            w.settings[key] = Setting(" ".join(ports), cmd.flag_spans.get(names[0][2:], cmd.start), names[0])


def router_urls(w: Worker, cmd: Command) -> None:
    """SGLang's PD router takes `--prefill URL [BOOTSTRAP_PORT]` and `--decode URL`, each repeated once per server
    (`nargs="+", action="append"`, sgl-project/sglang sgl-router/py_src/sglang_router/router_args.py at
    e46dcd87adca58ec70831ad7cb01a3892b2c9e50); SGLang's mini_lb takes every URL after one `--prefill` / `--decode`
    (`nargs="+"`, mini_lb.py at 001c2ae0901cd353c26fed2f435887c867b73eed): every URL with its span, under
    `router_prefill` / `router_decode` (the flag table keeps only the last)."""
    found: dict[str, list] = {"prefill": [], "decode": []}
    words = cmd.args
    mini_lb = any(a.text == "sglang.srt.disaggregation.mini_lb" for a in words[:4])
    for i, a in enumerate(words):
        name, eq, value = a.text.partition("=")
        role = name[2:] if name in ("--prefill", "--decode") else None
        if role is None:
            continue
        if eq:
            found[role].append((value, a.pos_of(len(name) + 1, len(value))))
            continue
        j = i + 1
        while j < len(words) and not words[j].text.startswith("-"):
            found[role].append((words[j].text, words[j].span))
            if not mini_lb:
                break  # the router's second word is the bootstrap port
            j += 1
    for role, urls in found.items():
        if urls:
            w.settings[f"router_{role}"] = Setting(urls, urls[0][1], f"--{role}")


def router_selectors(w: Worker, cmd: Command) -> None:
    """SGLang's PD router with `--service-discovery` finds its servers by Kubernetes pod labels: `--prefill-selector
    key=value ...` and `--decode-selector ...` (`nargs="+"`, every term must hold: sgl-project/sglang
    sgl-router/py_src/sglang_router/router_args.py, "format: key1=value1 key2=value2"; the Rust gateway also takes
    `a=b,c=d`). Each as `router_{role}_selector`: [(key, value)] with the flag's span; a term that is no key=value makes
    the selector unread."""
    if "service-discovery" not in cmd.flags:
        return
    words = cmd.args
    for i, a in enumerate(words):
        name, eq, value = a.text.partition("=")
        role = {"--prefill-selector": "prefill", "--decode-selector": "decode"}.get(name)
        if role is None:
            continue
        texts = [value] if eq else []
        j = i + 1
        while not eq and j < len(words) and not words[j].text.startswith("-"):
            texts.append(words[j].text)
            j += 1
        terms = [t.strip() for text in texts for t in text.split(",") if t.strip()]
        pairs = [tuple(t.split("=", 1)) for t in terms]
        if pairs and all(len(p) == 2 and p[0] for p in pairs):
            w.settings[f"router_{role}_selector"] = Setting(pairs, a.span, name)


# production-stack's P/D routing logics: each request's prefill goes to an endpoint whose model label is one of
# `--prefill-model-labels`, its decode to one of `--decode-model-labels` (comma-separated), and with none of a kind
# discovered every request is answered 503 (vllm-project/production-stack@a6c01db05f65f556235413ba8dbcfb0c01132fff
# src/vllm_router/parsers/parser.py:429-441, src/vllm_router/routers/routing_logic.py:600-630). With
# `--service-discovery k8s` an endpoint's model label is its pod's label `model` (service_discovery.py:657-669).
PD_ROUTING_LOGICS = ("disaggregated_prefill", "disaggregated_prefill_orchestrated")


def model_label_routing(w: Worker, cmd: Command) -> None:
    """production-stack's router: `router_prefill_labels` / `router_decode_labels` (lists), `routing_logic`,
    `service_discovery`, `k8s_label_selector`, as written (`--flag value` or `--flag=value`)."""
    keys = {"--prefill-model-labels": "router_prefill_labels", "--decode-model-labels": "router_decode_labels",
            "--routing-logic": "routing_logic", "--service-discovery": "service_discovery", "--k8s-label-selector": "k8s_label_selector"}
    words = cmd.args
    for i, a in enumerate(words):
        name, eq, value = a.text.partition("=")
        key = keys.get(name)
        if key is None:
            continue
        if not eq:
            if i + 1 >= len(words):
                continue
            value = words[i + 1].text
        value = value.strip("\"'")
        if key.endswith("_labels"):
            w.settings[key] = Setting([v.strip() for v in value.split(",") if v.strip()], a.span, name)
        else:
            w.settings[key] = Setting(value, a.span, name)

