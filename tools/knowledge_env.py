"""vLLM's environment variables and their defaults per release, for `tools/gen_knowledge.py --only vllm-env`: every
`"VLLM_X": lambda: ... os.getenv("VLLM_X", "default")` entry of `vllm/envs.py` in each release's wheel (read by HTTP
range requests, like the flag tables). A default that is no string literal is recorded as null (unknown).
"""

from __future__ import annotations

import re

MEMBER = "vllm/envs.py"
_ENTRY = re.compile(r'^\s*"(VLLM_[A-Z0-9_]+)"\s*:\s*lambda\s*:', re.M)
_DEFAULT = re.compile(r'os\.(?:getenv|environ\.get)\(\s*"(VLLM_[A-Z0-9_]+)"\s*,\s*(?:"([^"]*)"|\'([^\']*)\')')


def env_defaults(text: str) -> dict[str, str | None]:
    """{VLLM_X: default string, or None when it is not a literal} for every variable envs.py defines."""
    out: dict[str, str | None] = {}
    starts = [(m.start(), m.group(1)) for m in _ENTRY.finditer(text)]
    for i, (start, name) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(text)
        m = next((d for d in _DEFAULT.finditer(text, start, end) if d.group(1) == name), None)
        out[name] = None if m is None else (m.group(2) if m.group(2) is not None else m.group(3))
    return out


def generate(releases: list[str], members, ranges) -> dict:
    """{"releases", "env": {name: {"in": ranges, "defaults": [[first release, default], ...]}}} from the wheels;
    `members(version)` returns {member: text} of one release, `ranges` is gen_knowledge's range builder."""
    per_release = {}
    for v in releases:
        text = members(v).get(MEMBER)
        if text:
            per_release[v] = env_defaults(text)
    versions = [v for v in releases if v in per_release]
    env = {}
    for name in sorted({n for d in per_release.values() for n in d}):
        present = [name in per_release[v] for v in versions]
        firsts: list[list] = []
        for v in versions:
            if name in per_release[v] and (not firsts or firsts[-1][1] != per_release[v][name]):
                firsts.append([v, per_release[v][name]])
        env[name] = {"in": ranges(present, versions), "defaults": firsts}
    return {"system": "vllm", "package": "vllm", "source": f"PyPI wheels of vllm {versions[0]}..{versions[-1]}, {MEMBER}, read by HTTP range "
            "requests by tools/gen_knowledge.py", "releases": versions, "env": env}
