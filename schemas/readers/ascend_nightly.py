"""vllm-ascend's nightly multi-node test configs: the YAML its harness turns into one vLLM server per node (or per
data-parallel rank) and a prefill/decode proxy. Recognised by the keys each loader requires, never by file name.

Sources: vllm-project/vllm-ascend at 182b75e, tests/e2e/nightly/multi_node/.
- internal DP (internal_dp/scripts/multi_node_config.py, MultiNodeConfigLoader): required `model`, `deployment`,
  `num_nodes`, `npu_per_node`, `benchmarks`; `deployment[i]` is node i (its own machine): `server_cmd` is expanded
  `$VAR` / `${VAR}` from the node's `envs` plus what the harness sets at run time (LOCAL_IP, MASTER_IP, HCCL_IF_IP,
  NIC_NAME...), then split as a shell would (test_multi_node.py `_cmd_to_list`: shlex.split) and run.
  `disaggregated_prefill.prefiller_host_index` / `decoder_host_index` are the nodes the proxy sends prefill and
  decode to (ProxyLauncher: --prefiller-hosts / --decoder-hosts).
- external DP (external_dp/scripts/external_dp_config.py, runtime.py ServerCommandBuilder): required `model`,
  `num_nodes`, `npu_per_node`, `routing`, `config`, `templates`, `benchmarks`; node i runs `config[i].dp_size_local`
  servers, each `vllm serve <model> <templates[i].server_cmd_template...>` with `${DP_SIZE}`, `${DP_RANK}`,
  `${TP_SIZE}`... from `config[i]` (dp_rank = dp_rank_start + local rank), `$VAR` from the template's envs, and
  `${NODE_k_IP}` / `${LOCAL_IP}` the cluster's addresses (run time). `routing.groups` gives each node's role
  (RankResolver._role_by_node_index: `prefiller`, `decoder`).
"""

from __future__ import annotations

import re
from typing import Any

from ..cmdline import Arg, find_command
from ..knowledge.versions import Target
from ..model import Deployment, Host, Setting, Worker
from ..shell import ShellReader
from ..source import SourceDocument, Span
from .common import env_from_k8s, new_worker, scalar_arg, scalar_offsets

SOURCE = "vllm-project/vllm-ascend@182b75e tests/e2e/nightly/multi_node"
_INTERNAL = ("model", "deployment", "num_nodes", "npu_per_node", "benchmarks")
_EXTERNAL = ("model", "num_nodes", "npu_per_node", "routing", "config", "templates", "benchmarks")
_GROUP_ROLES = {"prefiller": "prefill", "decoder": "decode"}
_WHOLE_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")

MAX_LOCAL_RANKS = 1024  # servers read per node, at most (a node with more data-parallel ranks than this is no node of today)


def looks_like_internal(data: Any) -> bool:
    return isinstance(data, dict) and all(k in data for k in _INTERNAL) and isinstance(data["deployment"], list) \
        and any(isinstance(d, dict) and isinstance(d.get("server_cmd"), str) for d in data["deployment"])


def looks_like_external(data: Any) -> bool:
    return isinstance(data, dict) and all(k in data for k in _EXTERNAL) and isinstance(data["config"], list) \
        and isinstance(data["templates"], list) and isinstance(data["routing"], dict)


def _node_host(doc: SourceDocument, i: int) -> Host:
    return Host("node", f"node {i}", f"node:{doc.path}:{i}", node=f"node {i}")


def _set_role(w: Worker, role: str | None, why: str, span: Span) -> None:
    """The harness's proxy sends `role` traffic to this node: the role where the engine's own flags do not say one,
    and `routed_as` always (as for vLLM's toy proxy, schemas/roles.py)."""
    from ..roles import _route

    if role is not None and w.is_engine:
        _route(w, role, f"{why} ({SOURCE})", Setting(role, span, why))


def read_internal(doc: SourceDocument, dep: Deployment, target: Target) -> None:
    data = doc.data
    dep.format = "script"
    pd = data.get("disaggregated_prefill") if isinstance(data.get("disaggregated_prefill"), dict) else {}
    roles: dict[int, tuple[str, str, Span]] = {}
    for key, role in (("prefiller_host_index", "prefill"), ("decoder_host_index", "decode")):
        listed = pd.get(key)
        for j, n in enumerate(listed if isinstance(listed, list) else []):
            if isinstance(n, int):
                roles[n] = (role, f"node {n} in disaggregated_prefill.{key}, where the harness's proxy sends {role}",
                            Span(*doc.marks.value(("disaggregated_prefill", key, j))))
    # the harness refuses an index past num_nodes before it starts any proxy (DisaggregatedPrefillCfg._validate raises
    # "Disaggregated prefill index out of range", internal_dp/scripts/multi_node_config.py): then nothing is routed
    rejected = isinstance(data.get("num_nodes"), int) and any(n >= data["num_nodes"] for n in roles)
    if rejected:
        roles = {}
    for i, node in enumerate(data["deployment"]):
        if not isinstance(node, dict) or not isinstance(node.get("server_cmd"), str):
            continue
        text = node["server_cmd"]
        path = ("deployment", i, "server_cmd")
        env = env_from_k8s(doc, ("deployment", i, "envs"), node.get("envs"))
        reader = ShellReader(doc.text, base_env=env)
        host = _node_host(doc, i)
        # the harness splits server_cmd with shlex (RemoteOpenAIServer in tests/e2e/conftest.py: `shlex.split(vllm_serve_args)`),
        # so a line break is a space there, not the end of a command as in a shell (a folded scalar keeps the breaks of
        # its more-indented lines); one character for one, so positions stay
        for launch in reader.read(text.replace("\n", " "), scalar_offsets(doc, path, text)):
            w = new_worker(launch.command, path=doc.path, name=f"node {i}", host=host, hints=[], env=launch.env, target=target)
            w.set("vllm_plugin", "vllm-ascend", None, f"vllm-ascend's nightly multi-node harness ({SOURCE})")
            if i in roles:
                _set_role(w, *roles[i])
            if rejected:
                w.notes.append(f"disaggregated_prefill names a node index past num_nodes ({data['num_nodes']}): the harness stops with "
                               "'Disaggregated prefill index out of range' before it starts a proxy, so no node is routed")
            dep.workers.append(w)


def read_external(doc: SourceDocument, dep: Deployment, target: Target) -> None:
    data = doc.data
    dep.format = "script"
    groups = data["routing"].get("groups") if isinstance(data["routing"].get("groups"), dict) else {}
    roles = {n: (str(g), Span(*doc.marks.value(("routing", "groups", g, j)))) for g, ns in groups.items() if isinstance(ns, list)
             for j, n in enumerate(ns) if isinstance(n, int)}
    model = Arg(str(data["model"]), Span(*doc.marks.value(("model",))), ())
    reader = ShellReader(doc.text)
    for i, node in enumerate(data["config"]):
        tmpl = data["templates"][i] if i < len(data["templates"]) else None
        if not isinstance(node, dict) or not isinstance(tmpl, dict) or not isinstance(tmpl.get("server_cmd_template"), list):
            continue
        local = node.get("dp_size_local", 1)
        start = node.get("dp_rank_start", 0)
        if not isinstance(local, int) or not isinstance(start, int) or local < 1 or local > MAX_LOCAL_RANKS:
            # a rank count the file does not give as a number (or no node holds: more ranks than a node has NPUs by
            # orders of magnitude): one server, its rank unknown
            local, start = 1, None
        env_raw = env_from_k8s(doc, ("templates", i, "envs"), tmpl.get("envs"))
        for r in range(local):
            values = _rank_values(doc, i, node, model, None if start is None else start + r, r)
            env = {k: _render(a, values, {}) for k, a in env_raw.items()}
            words = [Arg("vllm", model.span, ()), Arg("serve", model.span, ()), model]
            for j, item in enumerate(tmpl["server_cmd_template"]):
                if isinstance(item, (str, int, float)):
                    words.append(_render(scalar_arg(doc, ("templates", i, "server_cmd_template", j), str(item), reader), values, env))
            cmd = find_command(words)
            if cmd is None:
                continue
            w = new_worker(cmd, path=doc.path, name=f"node {i} rank {r}", host=_node_host(doc, i), hints=[], env=env, target=target)
            w.set("vllm_plugin", "vllm-ascend", None, f"vllm-ascend's nightly multi-node harness ({SOURCE})")
            if i in roles:
                group, span = roles[i]
                _set_role(w, _GROUP_ROLES.get(group), f"node {i} in routing.groups.{group}, where the harness's proxy sends it", span)
            dep.workers.append(w)


def _rank_values(doc: SourceDocument, i: int, node: dict, model: Arg, dp_rank: int | None, local_rank: int) -> dict[str, Arg]:
    """The `${NAME}` values ServerCommandBuilder._build_variables gives one rank, positioned where the file sets them."""
    def at(key: str, default: Any) -> Arg:
        if key in node:
            return Arg(str(node[key]), Span(*doc.marks.value(("config", i, key))), ())
        return Arg(str(default), Span(*doc.marks.key(("config", i))), ())

    out = {"MODEL": model, "DP_SIZE": at("dp_size", 1), "DP_SIZE_LOCAL": at("dp_size_local", 1), "TP_SIZE": at("tp_size", 1),
           "CP_SIZE": at("cp_size", 1), "SP_SIZE": at("sp_size", 1), "PP_SIZE": at("pp_size", 1), "DP_RPC_PORT": at("dp_rpc_port", ""),
           "DP_ADDRESS": at("dp_address", ""), "PORT_START": at("port_start", ""), "NODE_INDEX": Arg(str(i), Span(*doc.marks.key(("config", i))), ()),
           "LOCAL_RANK": Arg(str(local_rank), Span(*doc.marks.key(("config", i))), ())}
    if dp_rank is not None:
        out["DP_RANK"] = Arg(str(dp_rank), out["DP_SIZE_LOCAL"].span, ())
    port = node.get("port_start")
    if isinstance(port, int):
        out["PORT"] = Arg(str(port + local_rank), Span(*doc.marks.value(("config", i, "port_start"))), ())
    return out


def _render(a: Arg, braced: dict[str, Arg], unbraced: dict[str, Arg]) -> Arg:
    """A template item that is one variable becomes its value (positioned where the value is set); a variable the
    file does not set (a cluster address, one set at run time) stays as written, which the engines read as unknown."""
    m = _WHOLE_VAR.fullmatch(a.text)
    if m is None:
        return a
    value = braced.get(m.group(1)) if m.group(1) else unbraced.get(m.group(2))
    if value is None or "$" in value.text:
        return a
    return Arg(value.text, value.span, ())
