"""What a worker's KV connectors are, by the registry of the vLLM release it targets (never by their spelling).

vLLM's `KVConnectorFactory` loads a registered name's class, or, with `kv_connector_module_path`, the class of that
name in the user's module (the registry is not consulted). The registered names, their module and class, per release,
are generated facts (`schemas/knowledge/generated/transports.json`); Dynamo's patched vLLM 0.7.2/0.8.4 also accepted
`DynamoNixlConnector` (curated fact `vllm.dynamo_patched_connector`). A connector that is none of these is Unknown.
"""

from __future__ import annotations

import functools
import weakref
from typing import Any, NamedTuple

from disagg.schemas import knowledge
from disagg.schemas.knowledge import version_key
from disagg.schemas.kv_config import ConnectorUse, connector_uses
from disagg.schemas.model import Worker

DYNAMO_PATCHED = "DynamoNixlConnector"

# Names the vllm-ascend plugin adds to vLLM's KVConnectorFactory when it loads (its register_connector entry point):
# generated per release tag (transports.json "vllm-ascend", v0.7.3..v0.25.1rc1), plus one registered on its main branch
# after the last tag read (vllm-project/vllm-ascend at 9d8cc21, vllm_ascend/distributed/kv_transfer/__init__.py). Where
# vllm-ascend is installed they are registered, so near-spellings of built-ins (MooncakeHybridConnector ~
# MooncakeConnector) are no misspellings.
ASCEND = "vllm-ascend"
ASCEND_PLUGIN_CONNECTORS = knowledge.transport_names(ASCEND, frozenset(knowledge.transport_releases_read(ASCEND))) | {"SfaRemoteD2HConnector"}
# Of those, the point-to-point ones whose direction is the kv_role: they start a sending thread only when kv_role is
# kv_producer and a receiving one otherwise (vllm-ascend at 182b75e, kv_p2p/mooncake_connector.py and
# kv_p2p/mooncake_hybrid_connector.py, `if self.kv_role == "kv_producer": self.kv_send_thread = ...`).
ASCEND_DIRECTIONAL = frozenset({"MooncakeConnectorV1", "MooncakeHybridConnector"})
_NIXL_MODES = ("pull", "push")


# Answers per worker (rules ask transports/is_nixl five times for every worker of a file, with the same names):
# a worker is read whole before any rule runs and no rule changes it, so an answer holds for as long as the worker.
_PER_WORKER: "weakref.WeakKeyDictionary[Worker, dict]" = weakref.WeakKeyDictionary()


def _memo(w: Worker, key: tuple, compute):
    memo = _PER_WORKER.get(w)
    if memo is None:
        memo = _PER_WORKER[w] = {}
    if key not in memo:
        memo[key] = compute()
    return memo[key]


class Resolved(NamedTuple):
    use: ConnectorUse
    status: str  # registered | unregistered | module (loaded by kv_connector_module_path) | unknown
    classes: frozenset[tuple[str, str]]  # (module, class) the engine loads, when registered
    why: str  # the releases and source the answer rests on, or what could not be compared


def engine_releases(w: Worker, engine: str) -> tuple[frozenset[str], str]:
    """The engine releases `w` may run, and why when a Dynamo release decides them: a `dynamo.<engine>` worker of a file
    that names one Dynamo release runs the engine its wheel pins (ai-dynamo[vllm], Dynamo's runtime images)."""
    cands = w.target.releases(engine)
    dynamo = w.target.releases("dynamo")
    if w.program == f"dynamo.{engine}" and len(dynamo) == 1:
        pin = knowledge.dynamo_pin(next(iter(dynamo)), engine)
        if pin is not None and pin[0] in cands:
            return frozenset({pin[0]}), pin[1]
    return cands, ""


def vllm_releases(w: Worker) -> tuple[frozenset[str] | None, str]:
    """The vLLM releases whose connector registry decides for `w` (the target's candidates that we have read), and
    their description; None when a candidate is a release whose registry we have not read (newer than our table)."""
    return _memo(w, ("vllm_releases",), lambda: _vllm_releases(w))


def _vllm_releases(w: Worker) -> tuple[frozenset[str] | None, str]:
    cands, pinned_by = engine_releases(w, "vllm")
    narrowed = "vllm" in w.target.candidates
    return _releases(cands, pinned_by, w.target.describe("vllm") if narrowed and not pinned_by else "")


@functools.lru_cache(maxsize=4096)
def _releases(cands: frozenset[str], pinned_by: str, described: str) -> tuple[frozenset[str] | None, str]:
    """vllm_releases for one set of candidates (rules ask it for every worker and pair: a 1 MB script asked 3,500 times)."""
    read = frozenset(knowledge.transport_releases_read("vllm"))
    if not read:
        return None, "no vLLM connector table"
    first = min(read, key=version_key)
    unread = sorted((r for r in cands - read if version_key(r) > version_key(first)), key=version_key)
    if unread:
        return None, f"vLLM {unread[-1]}'s connector registry is not in our table"
    # Releases before the first table (0.6.0-0.6.4) have no connector factory and no --kv-transfer-config: left out.
    relevant = cands & read
    if not relevant:
        return None, "the vLLM release is older than our connector table"
    if pinned_by:
        described = f"vLLM {next(iter(relevant))} ({pinned_by})"
    elif not described:  # nothing in the file narrows it
        ordered = sorted(relevant, key=version_key)
        described = f"any vLLM release ({ordered[0]}..{ordered[-1]})"
    return relevant, described


def dynamo_patched(releases: frozenset[str]) -> bool:
    """Whether Dynamo's patched vLLM (0.7.2/0.8.4), which accepts DynamoNixlConnector, is among `releases`."""
    return bool(knowledge.fact("vllm.dynamo_patched_connector").releases & releases)


def resolve(use: ConnectorUse, releases: frozenset[str], described: str) -> Resolved:
    """One connector by the registry of `releases`."""
    mode = use.extra.get("transfer_mode")
    # rules ask this for every worker and pair, with the same few connectors: answered once per (connector, releases)
    how = _resolution if mode is None or isinstance(mode, str) else _resolution.__wrapped__
    return Resolved(use, *how(use.name, use.module_path, mode, releases, described))


@functools.lru_cache(maxsize=4096)
def _resolution(name: str, module_path: str | None, mode: Any, releases: frozenset[str], described: str) -> tuple[str, frozenset, str]:
    """resolve's (status, classes, why) for one connector (its name, kv_connector_module_path and transfer_mode)."""
    if module_path:
        return ("module", frozenset(), f"{name} is a class in {module_path} (kv_connector_module_path), which is not in this file; "
                                      "vLLM does not consult its registry for it")
    where = knowledge.transport_in("vllm", name) & releases
    if where:
        classes = knowledge.transport_classes("vllm", name, releases)
        modal = knowledge.transport_pattern("vllm", "nixl_transfer_mode")
        if name == "NixlConnector" and releases <= modal and mode in _NIXL_MODES:
            # the factory maps NixlConnector to NixlPullConnector/NixlPushConnector by transfer_mode (0.34)
            classes = knowledge.transport_classes("vllm", f"Nixl{mode.capitalize()}Connector", releases) or classes
        return "registered", classes, f"registered in {described} [{knowledge.transport_source('vllm', where)}]"
    if name == DYNAMO_PATCHED and dynamo_patched(releases):
        fact = knowledge.fact("vllm.dynamo_patched_connector")
        return "registered", frozenset({("ai-dynamo-vllm", name)}), fact.cite()
    return "unregistered", frozenset(), f"not registered in {described} [{knowledge.transport_source('vllm', releases)}]"

def runs_vllm_ascend(w: Worker) -> str | None:
    """Why the file says this vLLM worker runs with the vllm-ascend plugin (its image, or vllm-ascend's own nightly
    harness, which the readers record as the `vllm_plugin` setting), or None."""
    s = w.settings.get("vllm_plugin")
    return s.origin if s is not None and s.value == ASCEND else None


def worker_uses(w: Worker) -> list[ConnectorUse] | None:
    """The connectors a vLLM worker's file states (None when it states none or they are set at run time)."""
    s = w.settings.get("kv_config")
    if s is not None:
        return connector_uses(s.value) if s.known else None
    s = w.settings.get("kv_connector")
    if s is not None and s.known and isinstance(s.value, str):
        return [ConnectorUse(s.value, None, {}, ())]
    return None


def leaves(uses: list[ConnectorUse]) -> list[ConnectorUse]:
    """The connectors that move KV: a wrapper's children stand for it."""
    out: list[ConnectorUse] = []
    for u in uses:
        out += leaves(list(u.children)) if u.children else [u]
    return out


def every(uses: list[ConnectorUse]) -> list[ConnectorUse]:
    out: list[ConnectorUse] = []
    for u in uses:
        out += [u, *every(list(u.children))]
    return out


class Transports(NamedTuple):
    classes: frozenset[tuple[str, str]]  # what the known connectors load
    unknown: tuple[Resolved, ...]  # connectors whose class could not be established


def transports(w: Worker, names: set[str] | None) -> Transports | None:
    """What the worker's connectors are, for comparing two sides; None when the release or config is unknown.
    `names` are the connectors `connector_of` found (a launcher's default has no kv-transfer-config to read)."""
    if w.engine != "vllm":
        return None
    return _memo(w, ("transports", None if names is None else frozenset(names)), lambda: _transports(w, names))


def _transports(w: Worker, names: set[str] | None) -> Transports | None:
    releases, described = vllm_releases(w)
    if releases is None:
        return None
    uses = worker_uses(w)
    if uses is None:
        uses = [ConnectorUse(n, None, {}, ()) for n in sorted(names or ())]
    found = [resolve(u, releases, described) for u in leaves(uses)]
    known = frozenset(c for r in found if r.status == "registered" for c in r.classes)
    return Transports(known, tuple(r for r in found if r.status != "registered"))


def can_exchange(a: Transports, b: Transports) -> bool | None:
    """True when both sides load a common class (or classes of one module: variants of one implementation, such as
    vLLM 0.34's NixlPull/NixlPushConnector), False when every connector of both is known and none is shared,
    None when some connector's class is unknown."""
    if a.classes & b.classes or {m for m, _ in a.classes} & {m for m, _ in b.classes}:
        return True
    if a.unknown or b.unknown:
        return None
    return False


def is_nixl(w: Worker, names: set[str] | None) -> bool | None:
    """True when a connector of `w` loads the class vLLM registers as NixlConnector (or its pull/push variants) or
    Dynamo's patched DynamoNixlConnector; None when a connector's class is unknown and none is NIXL."""
    if w.engine != "vllm":
        return None
    return _memo(w, ("is_nixl", None if names is None else frozenset(names)), lambda: _is_nixl(w, names))


def _is_nixl(w: Worker, names: set[str] | None) -> bool | None:
    t = transports(w, names)
    if t is None:
        return None
    releases, _ = vllm_releases(w)
    nixl = frozenset().union(*(knowledge.transport_classes("vllm", n, releases or frozenset()) for n in ("NixlConnector", "NixlPullConnector", "NixlPushConnector")))
    nixl_modules = {m for m, _ in nixl}
    if any(m in nixl_modules for m, _ in t.classes) or ("ai-dynamo-vllm", DYNAMO_PATCHED) in t.classes:
        return True
    return None if t.unknown else False


def is_dynamo_patched(w: Worker, names: set[str] | None) -> bool:
    """True when `w` runs Dynamo's patched-vLLM DynamoNixlConnector (its block and side-channel rules differ)."""
    t = transports(w, names)
    return t is not None and ("ai-dynamo-vllm", DYNAMO_PATCHED) in t.classes
