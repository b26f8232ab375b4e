"""Which prefill and decode workers exchange KV: within one file, and across the files of one invocation.

Within a file: every decode engine with every prefill engine of the same engine family and discovery scope (the
Dynamo namespace, the llm-d model label) that can run in the same invocation: script processes in exclusive branches
of an `if`/`case` (profiles picked by `case "$CONFIG"`) are alternatives, never a pair, and so are processes started
after the script stopped the earlier ones (`Worker.epoch`); branches selected by a role or host rank are one deployment
started once per branch (`model.Branch`, decided in `shell_flow.py`). Across files, only workers left without a partner in their own file are
linked, and only when they agree on what ties a deployment together: same folder, same engine family, and the
same model (as written, so two templates with `${MODEL_NAME}` link), labels or namespace where both say.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from . import knowledge, kube_services, lightllm
from .model import Branch, Deployment, Pair, Worker, is_loopback
from .roles import ROUTED_ENGINE, _host_port, label_routed, note_label_gaps

_SCOPE_LABELS = ("llm-d.ai/model", "app", "app.kubernetes.io/name", "llm-d.ai/inferenceServing", "llm-d.ai/guide")


def engines_of(dep: Deployment, role: str) -> list[Worker]:
    return [w for w in dep.workers if w.role == role and (w.engine is not None or w.program == "image-entrypoint") and not w.known("engine_part")]


def within(dep: Deployment) -> list[Pair]:
    pairs = []
    prefills = engines_of(dep, "prefill")
    order = {id(p): i for i, p in enumerate(prefills)}
    index = ByBranch(prefills)
    branched = set(index.groups) != {None}  # a file without script branches: every prefill is a candidate
    for d in engines_of(dep, "decode"):
        for p in sorted(index.candidates(d), key=lambda p: order[id(p)]) if branched else prefills:
            if _family(d) == _family(p) and _same_scope(d, p) and together(d.alternative, p.alternative) and not _stopped_between(d, p):
                pairs.append(Pair(d, p, "same file"))
    return pairs


class ByBranch:
    """Workers grouped by the outermost exclusive branch they run in, so that finding the ones that can run with a
    worker skips whole profiles it cannot meet (a script of N profiles would otherwise compare N² pairs)."""

    def __init__(self, workers: Iterable[Worker] = ()):
        self.groups: dict[str | None, dict[int | None, list[Worker]]] = {}
        for w in workers:
            self.add(w)

    def add(self, w: Worker) -> None:
        e = _outermost(w.alternative)
        self.groups.setdefault(e.frame if e else None, {}).setdefault(e.index if e else None, []).append(w)

    def candidates(self, w: Worker) -> Iterator[Worker]:
        """A superset of the workers `together` accepts with `w`."""
        e = _outermost(w.alternative)
        for frame, by_index in self.groups.items():
            if e is not None and frame == e.frame:
                yield from by_index.get(e.index, ())
            else:
                for ws in by_index.values():
                    yield from ws


    def meeting(self, w: Worker, one_invocation: bool = False) -> Iterator[Worker]:
        """The workers that serve one deployment with `w` (`together`); with `one_invocation`, the processes running at
        the same time as `w` in one run of the script (`concurrent`: also between the same stops)."""
        if one_invocation:
            return (o for o in self.candidates(w) if concurrent(o, w))
        return (o for o in self.candidates(w) if together(o.alternative, w.alternative))


def _outermost(alternative: tuple[Branch, ...] | None) -> Branch | None:
    for b in alternative or ():  # a loop, not next(genexpr): asked for every candidate of every worker
        if not b.per_process:
            return b
    return None


def across(deps: Iterable[Deployment], paired: set[int]) -> list[Pair]:
    """Links between files for workers with no partner in their own file (`paired`: ids of workers already paired)."""
    lonely_p, lonely_d = [], []
    kinds: dict[str, str] = {}
    for dep in deps:
        kinds[dep.path] = dep.format
        for w in engines_of(dep, "prefill"):
            if id(w) not in paired:
                lonely_p.append(w)
        for w in engines_of(dep, "decode"):
            if id(w) not in paired:
                lonely_d.append(w)
    routed = _routed(deps, lonely_p, lonely_d) + kube_services.routed(deps, lonely_p, lonely_d)
    linked = {id(w) for pair in routed for w in pair.ends()}
    pairs = []
    for p in lonely_p:
        for d in lonely_d:
            if d.path == p.path or os.path.dirname(d.path) != os.path.dirname(p.path) or _family(d) != _family(p):
                continue
            if id(d) in linked or id(p) in linked:
                continue  # a router of the folder says whom they serve with: no link by resemblance besides
            why = _link(d, p)
            if why:
                pairs.append(Pair(d, p, why, _apart_kinds(kinds.get(d.path), kinds.get(p.path)) or _registration_unknown(d)))
    return routed + _alternatives(pairs)


def routes_across(dep: Deployment) -> bool:
    """The file holds a PD router naming servers by URL, or a proxy naming them by Kubernetes Service: it may link
    servers of other files of its folder (`_routed`, kube_services.routed)."""
    return any(w.program in ROUTED_ENGINE and any(isinstance(getattr(w.settings.get(k), "value", None), list)
                                                   for k in ("router_prefill", "router_decode")) for w in dep.workers) \
        or kube_services.proxies_by_name(dep) or any(w.program == "vllm-router" for w in dep.workers)


def _routed(deps: Iterable[Deployment], lonely_p: list[Worker], lonely_d: list[Worker]) -> list[Pair]:
    """Prefill and decode servers of different files that one PD router sends the two halves of each request to.

    SGLang's PD router (`sglang_router.launch_router --pd-disaggregation --prefill URL --decode URL`, mini-lb or not)
    sends every request to a --prefill server and a --decode server with the same bootstrap room; it compares neither
    the model nor anything else of the two (sgl-project/sglang@001c2ae python/sglang/srt/disaggregation/mini_lb.py:
    `select_pair` picks any prefill and any decode URL, `generate` posts the request to both; the Rust PD router
    keeps the same prefill/decode URL lists). TensorRT-LLM's disaggregated server does the
    same with its context and generation URLs (roles.ROUTED_ENGINE). So the servers its URLs name exchange KV
    whatever their models: the link holds where the model differs, which is what DG205 must see. A URL names a server
    of another file only by the exact address that server binds (`--host 10.0.0.5 --port 30002`): a wildcard or
    loopback bind in another file may be another machine, and then only the resemblance links below apply."""
    pairs = _label_routed(deps, lonely_p, lonely_d)
    by_address: dict[tuple[str, str, str], list[Worker]] = {}
    for w in [*lonely_p, *lonely_d]:
        host = w.flags.get("host")
        if host is None or not host.known or str(host.value) in ("", "0.0.0.0", "::", "[::]") or is_loopback(str(host.value)):
            continue
        for engine, default_port in ROUTED_ENGINE.values():
            if w.engine == engine:
                by_address.setdefault((engine, str(host.value), str(w.known("port", default_port))), []).append(w)
    if not by_address:
        return pairs
    for dep in deps:
        for router in dep.workers:
            if router.program not in ROUTED_ENGINE:
                continue
            engine = ROUTED_ENGINE[router.program][0]
            named: dict[str, list[tuple[Worker, str]]] = {"prefill": [], "decode": []}
            for key, role in (("router_prefill", "prefill"), ("router_decode", "decode")):
                s = router.settings.get(key)
                for url, _span in (s.value if s is not None and isinstance(s.value, list) else ()):
                    host, port = _host_port(url)
                    for w in by_address.get((engine, host or "", port or ""), ()):
                        if w.role == role and os.path.dirname(w.path) == os.path.dirname(router.path):
                            named[role].append((w, url))
            for d, d_url in named["decode"]:
                for p, p_url in named["prefill"]:
                    if d.path != p.path:
                        pairs.append(Pair(d, p, f"the router {router.name} in {os.path.basename(router.path)} sends prefill to {p_url} and decode to {d_url}"))
    return pairs


def _label_routed(deps: Iterable[Deployment], lonely_p: list[Worker], lonely_d: list[Worker]) -> list[Pair]:
    """Prefill and decode pods of different files of one folder that a production-stack router there picks by their
    `model` label for the two halves of each request (roles.label_routed)."""
    pairs = []
    deps = list(deps)
    for dep in deps:
        routers = [w for w in dep.workers if w.program == "vllm-router"]
        if not routers:
            continue
        folder = os.path.dirname(dep.path)
        everyone = [w for d in deps if os.path.dirname(d.path) == folder for w in d.workers]
        for router in routers:
            note_label_gaps(router, everyone)  # what the router finds among every file of its folder
        servers = [w for w in [*lonely_p, *lonely_d] if os.path.dirname(w.path) == folder]
        named: dict[str, list[Worker]] = {"prefill": [], "decode": []}
        for _, w, role, _s in label_routed(routers, servers):
            if w.role == role:
                named[role].append(w)
        for d in named["decode"]:
            for p in named["prefill"]:
                if d.path != p.path:
                    pairs.append(Pair(d, p, f"the production-stack router in {os.path.basename(dep.path)} picks them by their pods' model labels"))
    return pairs


_CONTAINERS = ("kubernetes", "dynamo-graph", "helm-values", "llm-d", "compose")


def _apart_kinds(a: str | None, b: str | None) -> str:
    """Why a link between files of these formats is only a guess: a shell script starts processes on a machine, a
    manifest or compose file containers the orchestrator places; one deployment is rarely written half in each, and
    neither file names the other."""
    if a is None or b is None or a == b:
        return ""
    if "script" in (a, b) and ({a, b} - {"script"}) <= set(_CONTAINERS):
        return f"a {'shell script' if a == 'script' else a + ' file'} and a {'shell script' if b == 'script' else b + ' file'} are rarely halves of one deployment, and neither names the other"
    return ""


def _alternatives(pairs: list[Pair]) -> list[Pair]:
    """Mark links whose end also links with workers of another file of the same role: a folder of alternative setups
    (a NIXL prefill script beside an LMCache decode script and a NIXL one) says nothing of which files run together,
    so every such link is a guess, and what rests on it is at most an info (context.pair_finding)."""
    files: dict[int, set[str]] = {}
    for pair in pairs:
        files.setdefault(id(pair.prefill), set()).add(pair.decode.path)
        files.setdefault(id(pair.decode), set()).add(pair.prefill.path)
    out = []
    for pair in pairs:
        wide = [(w, n) for w, n in ((pair.prefill, len(files[id(pair.prefill)])), (pair.decode, len(files[id(pair.decode)]))) if n > 1]
        if wide and not pair.guess:
            w, n = wide[0]
            other = "decode" if w is pair.prefill else "prefill"
            guess = (f"{w.name} ({w.role}) links as well with {other} workers of {n} files in its folder, and no file says which of them "
                     "run together (alternative setups side by side)")
            pair = pair._replace(guess=guess)
        out.append(pair)
    return out


def together(a: tuple[Branch, ...] | None, b: tuple[Branch, ...] | None, one_invocation: bool = False) -> bool:
    """Whether processes in branches `a` and `b` of one script serve one deployment (when unsure: no).

    `one_invocation`: whether they run in the same run of the script, so share its host and network. Branches chosen
    by a role or host rank are one deployment but different runs, maybe on different hosts."""
    for x in a or ():
        for y in b or ():
            if x.per_process and y.per_process and (x.frame == y.frame or x.selector == y.selector):
                if one_invocation and (x.frame != y.frame or x.index != y.index) and not _meet(x, y):
                    return False
                continue  # run once per role or host: different branches are different processes of one deployment
            if x.frame == y.frame:
                if x.index != y.index:
                    return False
            elif x.selector is not None and x.selector == y.selector and not _meet(x, y):
                return False
    return True


def _stopped_between(a: Worker, b: Worker) -> bool:
    """Two processes of one run of a script, one started after the script stopped what it had started (kill, pkill,
    wait: `Worker.epoch`): sequential experiments, never one deployment. Processes of different runs (branches picked
    per role or host) have epochs counted in different runs, which say nothing about each other."""
    return a.epoch != b.epoch and together(a.alternative, b.alternative, one_invocation=True)


def concurrent(a: Worker, b: Worker) -> bool:
    """Whether two processes of one script can run at the same time: in branches one invocation runs together, and
    started between the same stops of what the script started (`Worker.epoch`: kill, pkill, wait...)."""
    return a.epoch == b.epoch and together(a.alternative, b.alternative, one_invocation=True)


def _meet(x: Branch, y: Branch) -> bool:
    """Some value of the selector picks both branches (a glob pattern meets only itself: unsure is apart)."""
    if x.values is not None and y.values is not None:
        return bool(x.values & y.values)
    if x.values is not None:
        return bool(x.values - y.excluded)
    if y.values is not None:
        return bool(y.values - x.excluded)
    return True


def _family(w: Worker) -> str:
    return w.engine or "unknown"


def _raw(w: Worker, key: str) -> str | None:
    s = w.settings.get(key)
    if s is None:
        return None
    v = s.value
    return getattr(v, "reason", None) if not s.known else str(v)


def _same_scope(a: Worker, b: Worker) -> bool:
    if a.system == "dynamo" and b.system == "dynamo" and a.namespace and b.namespace and a.namespace != b.namespace:
        return False  # different Dynamo namespaces never meet (reported by DG601 when both are written)
    reg_a, reg_b = lightllm.registers_with(a), lightllm.registers_with(b)
    if reg_a is not None and reg_b is not None and reg_a[0] != reg_b[0]:
        return False  # LightLLM servers meet only through the pd_master they register with (lightllm.py)
    return True


def _registration_unknown(w: Worker) -> str:
    """Why a link of two LightLLM servers by the pd_master address they register with is only a guess: a part of the
    address is set at run time (the same words may be given different values in each file's run)."""
    reg = lightllm.registers_with(w)
    if reg is None or reg[1]:
        return ""
    return f"both register with the {reg[0]} as written, which is set at run time"


def _link(d: Worker, p: Worker) -> str | None:
    reg_d, reg_p = lightllm.registers_with(d), lightllm.registers_with(p)
    if reg_d is not None and reg_p is not None:
        # the pd_master pairs every prefill with every decode server that registers with it, whatever their models
        # (lightllm.py): the address they register with is what links them, not a resemblance
        return f"both register with the {reg_d[0]} across files" if reg_d[0] == reg_p[0] else None
    model_d, model_p = _raw(d, "model"), _raw(p, "model")
    shared = [k for k in _SCOPE_LABELS if k in d.labels and d.labels.get(k) == p.labels.get(k)]
    if any(k in d.labels and k in p.labels and d.labels[k] != p.labels[k] for k in ("llm-d.ai/model", "app")):
        return None
    if d.namespace and p.namespace and d.namespace != p.namespace and d.system == p.system == "dynamo":
        return None
    if model_d is not None and model_d == model_p:
        return "same model" + (f" and labels ({', '.join(shared)})" if shared else "") + " across files"
    if model_d is None and model_p is None and "model" not in d.settings and "model" not in p.settings:
        # neither file says its model (SGLang server-argument files: the command line that reads them gives it); the
        # served model name is what Dynamo's frontend pairs prefill and decode workers by (per namespace from 1.0,
        # ai-dynamo/dynamo#6054, see DG601)
        sd, sp = d.settings.get("served_model_name"), p.settings.get("served_model_name")
        if sd is not None and sp is not None and sd.known and sp.known and str(sd.value) == str(sp.value):
            return f"same served model name ({sd.value}) across files, neither of which says the model"
    if shared:
        return f"same labels ({', '.join(shared)}) across files"
    return None


_DYNAMO_WORKERS = ("dynamo.vllm", "dynamo.sglang", "dynamo.trtllm")
_DISCOVERY_ENV = ("ETCD_ENDPOINTS", "NATS_SERVER")


class Split(NamedTuple):
    """A Dynamo prefill and decode worker of two files that the run shows to be one deployment, but that register
    where the other never looks: `key` is the setting that differs (the Dynamo `namespace`)."""

    prefill: Worker
    decode: Worker
    key: str
    why: str


def splits(deps: Iterable[Deployment], paired: set[int]) -> list[Split]:
    """Prefill and decode workers left without a partner, in two files of one folder, that register in different Dynamo
    namespaces (so `across` does not link them), where everything else the files state ties them into one
    deployment: the run holds one Dynamo frontend and no other Dynamo prefill or decode worker, both workers are
    Dynamo engines of one engine family that load the same model and register under the same served model name (as
    written), and write the same etcd/NATS endpoint in their environment (the discovery they register in). Never
    from names: a run with anything else in it gives nothing."""
    deps = list(deps)
    workers = [w for dep in deps for w in dep.workers]
    if sum(w.program == "dynamo.frontend" for w in workers) != 1:
        return []
    dyn = [w for dep in deps for role in ("prefill", "decode") for w in engines_of(dep, role)]
    if len(dyn) != 2 or any(w.program not in _DYNAMO_WORKERS or id(w) in paired for w in dyn):
        return []
    p, d = (dyn[0], dyn[1]) if dyn[0].role == "prefill" else (dyn[1], dyn[0])
    if p.role != "prefill" or d.role != "decode" or p.path == d.path or os.path.dirname(p.path) != os.path.dirname(d.path) or _family(p) != _family(d):
        return []
    if _raw(p, "model") is None or _raw(p, "model") != _raw(d, "model") or not all(w.settings["model"].known for w in (p, d)):
        return []
    # from 1.0.0 the frontend pairs a decode worker only with prefill workers of its own namespace (see DG601); before
    # it the prefill router went by model name alone, so a split there is no split
    per_namespace = knowledge.versions_between("dynamo", "1.0.0", None)
    if any(knowledge.verdict(w.target, "dynamo", per_namespace) is not True for w in (p, d)):
        return []
    shared = [k for k in _DISCOVERY_ENV if k in p.env and k in d.env and p.env[k].value == d.env[k].value]
    if not shared or any(k in p.env and k in d.env and p.env[k].value != d.env[k].value for k in _DISCOVERY_ENV):
        return []
    for key in ("namespace", "served_model_name"):
        ps, ds = p.settings.get(key), d.settings.get(key)
        if ps is None or ds is None or not ps.known or not ds.known or ps.span is None or ds.span is None:
            return []
    if str(p.settings["served_model_name"].value) != str(d.settings["served_model_name"].value) or \
            str(p.settings["namespace"].value) == str(d.settings["namespace"].value):
        return []
    why = (f"the run's only Dynamo frontend and only prefill and decode workers; both load {_raw(p, 'model')} and register in "
           f"discovery at {', '.join(f'{k}={p.env[k].value}' for k in shared)}")
    return [Split(p, d, "namespace", why)]
