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
