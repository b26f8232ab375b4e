"""vLLM recipes (vllm-project/recipes): YAML that the recipes site turns into `vllm serve` commands. For a
prefill/decode deployment (`deploy_type: pd_cluster`) the site builds each role's command from the role's own
section: `buildArgs(role)` appends, after the model's `base_args`, `strategy[role].vllm_args` (strategies/pd_cluster.yaml),
the model recipe's `strategy_overrides.pd_cluster[role].vllm_args`, and under a Mooncake KV store the store's
`pd[role].args` (kv_store/*.yaml, `deploy_type: kv_store_lb`), and runs the role with `strategy[role].env`
(vllm-project/recipes src/lib/command-synthesis.js, buildArgs and buildEnv, at 8959cf64189c71d36e11c6a30335f923f261b1f7).

Each file holds only its part of a role's command: what it writes is read, the model, the hosts (one pool of nodes per
role, chosen on the site) and whatever another file adds are not known here. The role is the section the site builds
it from.
"""

from __future__ import annotations

from typing import Any

from ..cmdline import Arg, Command, parse_flags
from ..knowledge.versions import Target
from ..model import Deployment, Host, Setting, Unknown
from ..source import SourceDocument, Span
from .common import env_from_k8s, new_worker

ROLES = ("prefill", "decode")


def _role_lists(data: Any) -> dict[str, tuple[tuple, dict]] | None:
    """role -> (path of its args list, its section) for the three kinds of recipe file, or None."""
    if not isinstance(data, dict):
        return None
    if data.get("deploy_type") == "pd_cluster":
        found = {r: ((r, "vllm_args"), data[r]) for r in ROLES if isinstance(data.get(r), dict) and isinstance(data[r].get("vllm_args"), list)}
    elif data.get("deploy_type") == "kv_store_lb" and isinstance(data.get("pd"), dict):
        pd = data["pd"]
        found = {r: (("pd", r, "args"), pd[r]) for r in ROLES if isinstance(pd.get(r), dict) and isinstance(pd[r].get("args"), list)}
    elif isinstance(data.get("model"), dict) and isinstance(data.get("strategy_overrides"), dict) \
            and isinstance(data["strategy_overrides"].get("pd_cluster"), dict):
        so = data["strategy_overrides"]["pd_cluster"]
        found = {r: (("strategy_overrides", "pd_cluster", r, "vllm_args"), so[r]) for r in ROLES
                 if isinstance(so.get(r), dict) and isinstance(so[r].get("vllm_args"), list)}
    else:
        return None
    return found or None


def looks_like_recipe(data: Any) -> bool:
    return _role_lists(data) is not None


def _args(doc: SourceDocument, path: tuple, items: list) -> list[Arg]:
    return [Arg(str(v), Span(*doc.marks.value(path + (i,)))) for i, v in enumerate(items) if isinstance(v, (str, int, float)) and not isinstance(v, bool)]


def read(doc: SourceDocument, dep: Deployment, target: Target) -> None:
    data = doc.data
    dep.format = "vllm-recipe"
    model = data.get("model") if isinstance(data.get("model"), dict) else {}
    base_args = _args(doc, ("model", "base_args"), model["base_args"]) if isinstance(model.get("base_args"), list) else []
    for role, (path, section) in (_role_lists(data) or {}).items():
        args = base_args + _args(doc, path, section[path[-1]])
        flags, spans, positional = parse_flags(args)
        start = Span(*doc.marks.key(path[:-1]))
        cmd = Command("vllm", [Arg("vllm", start), Arg("serve", start)] + args, flags, spans, positional, {}, start)
        env = env_from_k8s(doc, path[:-1] + ("env",), section.get("env")) if isinstance(section.get("env"), dict) else {}
        host = Host("unknown", f"{role} pool", f"recipe:{doc.path}:{role}")  # the role's own nodes, picked on the site
        w = new_worker(cmd, path=doc.path, name=role, host=host, hints=[], env=env, target=target)
        w.settings["model"] = Setting(Unknown("the recipe's model, chosen on the recipes site"), None, "recipe")
        if path[0] != role:  # a model recipe or a KV store: the strategy file adds its connector, ports and environment
            why = "set by strategies/pd_cluster.yaml, which the site adds to this role's command"
            for key in ("kv_connector", "port", "side_channel_host", "side_channel_port", "ucx_tls"):
                w.settings.setdefault(key, Setting(Unknown(why), None, "strategy"))
        if w.is_engine and w.role_from in ("name", "none", "default"):
            w.set_role(role, f"the recipe's {role} section (the site builds the {role} command from it)", "field")
        w.notes.append(f"the {role} command's other arguments (the model, its base arguments, the strategy or store that this file "
                       "composes with) are built on the recipes site, not in this file")
        dep.workers.append(w)
