"""Versioned facts about the systems the doctor reads, in one place: what each release of Dynamo, vLLM, SGLang,
TensorRT-LLM and llm-d accepts, defaults to and deprecates, each fact with its release range and upstream source.

Two kinds of data, both JSON beside this module and loaded lazily (the doctor's cold start does not pay for them
unless a rule asks):
* `generated/*.json`: read from the released packages by `tools/gen_knowledge.py` (run by hand): every flag of the
  `dynamo.*`, `sglang` and vLLM engine programs per release, and code facts found by pattern;
* `generated/transports.json`: per release, the KV transports each engine registers (vLLM's connector factory,
  SGLang's transfer backends), read by `tools/gen_knowledge.py --only transports`;
* `curated.json`: facts that no package carries (Dynamo v0's example workers were never packaged; what vLLM does
  beyond its flags), each with a citation.
"""

from __future__ import annotations

import json
import os
from functools import cache
from typing import Any, NamedTuple

from .versions import Evidence, Target, between, from_ranges, parse_version, version_key

__all__ = [
    "Evidence", "Fact", "Target", "between", "default_of", "dynamo_pin", "env_default", "env_releases", "fact", "flag_releases", "flags_defined", "known_releases", "new_target",
    "parse_version", "pattern", "transport_classes", "transport_in", "transport_names", "transport_pattern", "transport_releases_read",
    "transport_source", "version_key",
]


_HERE = os.path.dirname(__file__)


@cache
def _load(name: str) -> dict[str, Any]:
    with open(os.path.join(_HERE, name), encoding="utf-8") as handle:
        return json.load(handle)


def _generated(system: str) -> dict[str, Any]:
    return _load(f"generated/{system}.json")


@cache
def known_releases() -> dict[str, tuple[str, ...]]:
    """Every release we know of, per system, oldest first."""
    curated = _load("curated.json")["releases"]
    lists = _load("generated/releases.json")
    out = {
        "dynamo": tuple(curated["dynamo"]) + tuple(lists["dynamo"]),
        "sglang": tuple(lists["sglang"]),
        "vllm": tuple(lists["vllm"]),
        "trtllm": tuple(lists["trtllm"]),
        "llm-d": tuple(curated["llm-d"]),
        "llm-d-router": tuple(lists.get("llm-d-router", ())),  # llm-d/llm-d-router's tags (the P/D sidecar), not llm-d's images
    }
    return {k: tuple(sorted(v, key=version_key)) for k, v in out.items()}


def new_target(pins: dict[str, str] | None = None) -> Target:
    t = Target(known_releases())
    for system, release in (pins or {}).items():
        t.pin(system, release)
    return t


class Fact(NamedTuple):
    id: str
    says: str
    source: str
    system: str
    releases: frozenset[str]  # where it holds

    def cite(self) -> str:
        return f"{self.says} [{self.source}]"


@cache
def fact(fact_id: str) -> Fact:
    """A curated fact (`dynamo.v0.common_configs`) or a generated code pattern (`dynamo:vllm.connector_flag_rejected`)."""
    if ":" in fact_id:
        system, name = fact_id.split(":", 1)
        data = _generated(system)["patterns"][name]
        return Fact(fact_id, data["says"], f"{_generated(system)['source']}; {data['read_from']}", system,
                    from_ranges(known_releases()[system], data["in"]))
    data = _load("curated.json")["facts"][fact_id]
    known = known_releases()[data["system"]]
    rel = data.get("releases")
    releases = frozenset(known) if rel is None else from_ranges(known, [rel] if not isinstance(rel[0], list) else rel)
    return Fact(fact_id, data["says"], data["source"], data["system"], releases)


def pattern(system: str, name: str) -> Fact:
    return fact(f"{system}:{name}")


def generated_releases(system: str) -> frozenset[str]:
    return frozenset(_load("generated/releases.json")[system])


def verdict(target: Target, system: str, holds_in: frozenset[str]) -> bool | None:
    """Target.verdict over a fact read from the released wheels, and None when the target may be a release the wheels
    do not describe (Dynamo 0.1-0.3 images carried example workers from the source tree, which no wheel holds)."""
    if not target.releases(system) <= generated_releases(system):
        return None
    return target.verdict(system, holds_in)


@cache
def flag_releases(system: str, program: str, flag: str) -> frozenset[str] | None:
    """Releases of `system` in which `program` defines `--flag`; None when we have no table for that program."""
    table = _generated(system)["flags"].get(program)
    if table is None:
        return None
    entry = table.get(flag)
    return frozenset() if entry is None else from_ranges(known_releases()[system], entry["in"])


def flags_defined(system: str, program: str, releases: frozenset[str]) -> frozenset[str]:
    """Every `--flag` that `program` defines in at least one of `releases`."""
    known = known_releases()[system]
    table = _generated(system)["flags"].get(program) or {}
    return frozenset(f for f, e in table.items() if from_ranges(known, e["in"]) & releases)


@cache
def program_releases(system: str, program: str) -> frozenset[str] | None:
    """Releases of `system` that ship `program` (any flag of it defined); None when we have no table for it."""
    table = _generated(system)["flags"].get(program)
    if table is None:
        return None
    known = known_releases()[system]
    return frozenset().union(*(from_ranges(known, e["in"]) for e in table.values()))


@cache
def deprecated_releases(system: str, program: str, flag: str) -> frozenset[str]:
    entry = (_generated(system)["flags"].get(program) or {}).get(flag) or {}
    return from_ranges(known_releases()[system], entry.get("deprecated", []))


def default_of(system: str, program: str, flag: str, release: str | None = None) -> Any:
    """A flag's default in `release` (the latest known when None); None when the table does not say."""
    entry = (_generated(system)["flags"].get(program) or {}).get(flag) or {}
    if "default" in entry:
        return entry["default"]
    best = None
    for first, value in entry.get("defaults", []):
        if release is None or version_key(first) <= version_key(release):
            best = value
    return best


def generated_source(system: str) -> str:
    return _generated(system)["source"]


def curated(section: str) -> Any:
    """A curated table other than facts (e.g. `dynamo_v0_services`)."""
    return _load("curated.json")[section]


def versions_between(system: str, first: str | None, last: str | None) -> frozenset[str]:
    return between(known_releases()[system], first, last)


def evidence_from_flag(target: Target, system: str, program: str, flag: str) -> None:
    """A flag that exists in only some releases narrows the target to them."""
    rel = flag_releases(system, program, flag)
    if rel is None or not rel or rel == frozenset(known_releases()[system]):
        return
    ordered = sorted(rel, key=version_key)
    target.add(Evidence(system, rel, f"{flag} exists in {program} {ordered[0]}..{ordered[-1]}"))


def evidence_from_strict_flag(target: Target, system: str, program: str, flag: str, strict_until: str) -> None:
    """A flag that `program` refuses at start where it does not define it, up to `strict_until` (an argument parser that
    exits on an unknown flag): those releases without it are ruled out; later ones are kept."""
    rel = flag_releases(system, program, flag)
    if not rel:
        return  # no table, or a flag no release defines (passed on, or a mistake DG603 reports)
    known = known_releases()[system]
    allowed = rel | frozenset(v for v in known if version_key(v) > version_key(strict_until))
    shipped = program_releases(system, program) or frozenset(known)
    if target.releases(system) & shipped <= allowed:
        return  # it rules out nothing still possible where the program exists
    ordered = sorted(rel, key=version_key)
    target.add(Evidence(system, allowed, f"{flag} exists in {program} {ordered[0]}..{ordered[-1]}, and releases to {strict_until} refuse flags they do not define"))


def evidence_from_tag(target: Target, system: str, tag: str, why: str) -> bool:
    """An image tag or pin that names a release; True when it narrowed the target."""
    release = parse_version(tag)
    if release is None:
        return False
    known = known_releases().get(system, ())
    matches = frozenset(v for v in known if v == release or v.split(".post")[0] == release)
    if not matches:
        # A release we have no table for (newer than our data, or a dev build): keep it unknown.
        return False
    target.add(Evidence(system, matches, why, names_release=True))
    return True


# --- KV transports per release (generated/transports.json, tools/knowledge_transports.py) ----------------------

def _transports(system: str) -> dict[str, Any] | None:
    return _load("generated/transports.json").get(system)


@cache
def transport_releases_read(system: str) -> tuple[str, ...]:
    """The releases whose transports were read (oldest first); () when we have no table for `system`."""
    table = _transports(system)
    return tuple(sorted(table["releases"], key=version_key)) if table else ()


@cache
def transport_in(system: str, name: str) -> frozenset[str]:
    """Releases of `system` that register the transport `name` (exact spelling)."""
    table = _transports(system)
    entry = (table or {}).get("names", {}).get(name)
    return frozenset() if entry is None else from_ranges(transport_releases_read(system), entry["in"])


@cache  # a pure function of the release tables; rules ask it for every worker and pair
def transport_names(system: str, releases: frozenset[str]) -> frozenset[str]:
    """Every transport `system` registers in at least one of `releases`."""
    table = _transports(system) or {}
    return frozenset(n for n in table.get("names", {}) if transport_in(system, n) & releases)


@cache
def transport_classes(system: str, name: str, releases: frozenset[str]) -> frozenset[tuple[str, str]]:
    """(module, class) that the factory loads for `name` in any of `releases`."""
    entry = ((_transports(system) or {}).get("names") or {}).get(name) or {}
    known = transport_releases_read(system)
    return frozenset((load["module"], load["class"]) for load in entry.get("loads", []) if from_ranges(known, load["in"]) & releases)


@cache
def transport_pattern(system: str, name: str) -> frozenset[str]:
    """Releases where a code fact about the transports (e.g. vllm `nixl_transfer_mode`) holds."""
    entry = ((_transports(system) or {}).get("patterns") or {}).get(name)
    return frozenset() if entry is None else from_ranges(transport_releases_read(system), entry["in"])


@cache
def transport_source(system: str, releases: frozenset[str]) -> str:
    """Where the transports of these releases were read: `vllm-project/vllm v0.34.0 (62d4bc3c7) factory.py`."""
    table = _transports(system)
    if not table:
        return f"no transport table for {system}"
    shown = sorted(releases & frozenset(table["releases"]), key=version_key)
    if not shown:
        return f"{table['repo']} ({', '.join(table['read_from'])})"
    def one(v: str) -> str:
        w = table["releases"][v]
        return w.get("tag", v) + (f" ({w['commit']})" if w.get("commit") else "")
    span = one(shown[0]) if len(shown) == 1 else f"{one(shown[0])}..{one(shown[-1])}"
    return f"{table['repo']} {span}, {table['read_from'][0].rsplit('/', 1)[-1]}"


# --- llm-d's routing sidecar: the KV connector names each release accepts (generated/llm-d-router.json) ----------

@cache
def sidecar_connector_releases_read() -> tuple[str, ...]:
    """The sidecar releases whose accepted connector list was read (oldest first)."""
    table = _generated("llm-d-router").get("kv_connectors") or {}
    return tuple(sorted(table.get("releases", ()), key=version_key))


@cache
def sidecar_connector_in(name: str) -> frozenset[str]:
    """Releases of the sidecar that accept `--kv-connector name` (exact spelling)."""
    entry = ((_generated("llm-d-router").get("kv_connectors") or {}).get("names") or {}).get(name)
    return frozenset() if entry is None else from_ranges(sidecar_connector_releases_read(), entry["in"])


@cache
def sidecar_connectors(releases: frozenset[str]) -> frozenset[str]:
    """Every connector name some of `releases` accept."""
    names = (_generated("llm-d-router").get("kv_connectors") or {}).get("names") or {}
    return frozenset(n for n in names if sidecar_connector_in(n) & releases)


# --- vLLM environment variables per release (generated/vllm-env.json, tools/knowledge_env.py) -------------------

@cache
def env_releases(name: str) -> frozenset[str]:
    """vLLM releases whose envs.py defines `name`."""
    entry = _load("generated/vllm-env.json")["env"].get(name)
    return frozenset() if entry is None else from_ranges(known_releases()["vllm"], entry["in"])


def env_default(name: str, release: str) -> str | None:
    """The default vLLM `release` gives `name` (None when it does not define it, or the default is no literal)."""
    if release not in env_releases(name):
        return None
    best = None
    for first, value in _load("generated/vllm-env.json")["env"][name]["defaults"]:
        if version_key(first) <= version_key(release):
            best = value
    return best


# --- engine releases each Dynamo release pins (generated/dynamo-pins.json, tools/knowledge_pins.py) ------------

def dynamo_pin(release: str, engine: str) -> tuple[str, str] | None:
    """(engine release, source) that Dynamo `release` pins for `engine` (vllm, sglang, trtllm), as our release lists
    name it (`0.5.10.post1` -> `0.5.10`); None when the wheel pins none."""
    entry = _load("generated/dynamo-pins.json")["releases"].get(release)
    pinned = ((entry or {}).get("pins") or {}).get(engine, {}).get(engine)
    if not pinned:
        return None
    name = parse_version(pinned)
    name = name.split(".post")[0] if name else pinned
    return name, f"ai-dynamo {release} ({entry['artifact']}) requires {engine}=={pinned}"
