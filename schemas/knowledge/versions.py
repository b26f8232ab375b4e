"""Release versions and the set of releases a file may target.

A `Target` is what the doctor knows of the release one worker runs: the candidate releases of each system (Dynamo,
vLLM, SGLang, TensorRT-LLM) still possible after the evidence in the file (image tags, pins, flags that exist in only
some releases), with that evidence in words. A fact about a system holds, fails, or is unknown over the candidates:
`Target.verdict` answers True, False or None, and a rule reports an error or warning only on True/False.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import NamedTuple

_VERSION_TEXT = r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:\.?post(\d+))?"


_KEY_TEXT = r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:rc(\d+))?(?:\.?post(\d+))?"
_FINAL = 1 << 30  # a release sorts after its release candidates (vllm-ascend's tags: 0.13.0rc3 < 0.13.0)


@lru_cache(maxsize=4096)
def version_key(text: str) -> tuple[int, ...]:
    """Sortable key of a release name (`0.10.1.1`, `0.7.0.post1`, `v1.2`, `0.13.0rc3`); () when it is none."""
    m = re.fullmatch(_KEY_TEXT, text.strip())
    if not m:
        return ()
    major, minor, patch, extra, rc, post = m.groups()
    return (int(major), int(minor), int(patch or 0), int(extra or 0), int(rc) if rc else _FINAL, int(post or 0))


def parse_version(text: str) -> str | None:
    """The release a tag or pin names (`v0.11.0` -> `0.11.0`, `0.3.2-cuda12` -> `0.3.2`), or None."""
    m = re.match(_VERSION_TEXT, text.strip())
    if not m:
        return None
    major, minor, patch, extra, post = m.groups()
    out = f"{major}.{minor}.{patch or 0}" + (f".{extra}" if extra else "")
    return out + (f".post{post}" if post else "")


class Evidence(NamedTuple):
    system: str
    releases: frozenset[str]  # what this evidence allows
    why: str  # e.g. "image tag vllm-runtime:0.3.2", "--disaggregation-mode exists in dynamo 1.0.0..1.6.1"
    names_release: bool = False  # the file names the release (an image tag, a pin), rather than it being inferred


class Target:
    """Candidate releases per system for one worker; a system absent from `candidates` is unconstrained."""

    __slots__ = ("known", "candidates", "evidence", "pinned", "conflicts")

    def __init__(self, known: dict[str, tuple[str, ...]], candidates: dict[str, frozenset[str]] | None = None, evidence: list[Evidence] | None = None,
                 pinned: dict[str, str] | None = None, conflicts: list[Evidence] | None = None):
        self.known = known  # every release we know of, per system, oldest first
        self.candidates = candidates or {}
        self.evidence = evidence or []
        self.pinned = pinned or {}  # --target-version / [tool.disagg] target-version
        self.conflicts = conflicts or []  # evidence that contradicts what is already known

    def add(self, ev: Evidence) -> None:
        """Narrow a system's candidates; evidence that would leave none is a conflict, kept aside and not applied."""
        if self.pinned.get(ev.system):
            return
        before = self.releases(ev.system)
        after = before & ev.releases
        if after:
            self.evidence.append(ev)
            self.candidates[ev.system] = after
        else:
            self.conflicts.append(ev)

    def pin(self, system: str, release: str) -> None:
        self.pinned[system] = release
        self.candidates[system] = frozenset({release})

    def named(self, system: str) -> bool:
        """Whether the file (or --target-version) names the release of `system`, not only narrows it by what it uses."""
        return system in self.pinned or any(e.names_release for e in self.evidence if e.system == system)

    def releases(self, system: str) -> frozenset[str]:
        got = self.candidates.get(system)
        return got if got is not None else _as_set(self.known.get(system, ()))

    def verdict(self, system: str, holds_in: Iterable[str]) -> bool | None:
        """True when the fact holds in every candidate release, False in none, None when it depends."""
        cands = self.releases(system)
        if not cands:
            return None
        inside = cands & frozenset(holds_in)
        if inside == cands:
            return True
        if not inside:
            return False
        return None

    def describe(self, system: str) -> str:
        """`dynamo 0.3.2 (image tag vllm-runtime:0.3.2)` or `dynamo 0.4.0..0.6.1 (--is-prefill-worker ...)` or `dynamo (any release)`."""
        if system in self.pinned:
            return f"{system} {self.pinned[system]} (--target-version)"
        cands = sorted(self.releases(system), key=version_key)
        whys = "; ".join(dict.fromkeys(e.why for e in self.evidence if e.system == system))
        if not cands or system not in self.candidates:
            return f"{system} (release unknown: any)"
        span = cands[0] if len(cands) == 1 else f"{cands[0]}..{cands[-1]}"
        return f"{system} {span}" + (f" ({whys})" if whys else "")

    def copy(self) -> "Target":
        return Target(self.known, dict(self.candidates), list(self.evidence), dict(self.pinned), list(self.conflicts))

    def merge(self, system: str, releases: frozenset[str], evidence: list[Evidence]) -> None:
        """Take what other workers of the same file tell about a system (a file targets one release of each)."""
        if system in self.pinned:
            return
        self.candidates[system] = releases
        for ev in evidence:
            if ev not in self.evidence:
                self.evidence.append(ev)


@lru_cache(maxsize=256)
def _as_set(releases: tuple[str, ...]) -> frozenset[str]:
    """A system's known releases as a set, made once (rules ask a worker's candidates for every pair)."""
    return frozenset(releases)


@lru_cache(maxsize=1024)
def between(known: tuple[str, ...], first: str | None, last: str | None) -> frozenset[str]:
    """Known releases from `first` to `last` inclusive (open ends when None)."""
    lo = version_key(first) if first else ()
    hi = version_key(last) if last else None
    return frozenset(v for v in known if version_key(v) >= lo and (hi is None or version_key(v) <= hi))


def from_ranges(known: tuple[str, ...], ranges: Iterable[Iterable[str]]) -> frozenset[str]:
    out: set[str] = set()
    for first, last in ranges:
        out |= between(known, first, last)
    return frozenset(out)
