"""The engine releases each Dynamo release pins, for `tools/gen_knowledge.py --only dynamo-pins`: the `==` pins of
the `vllm`, `sglang` and `trtllm` extras in each ai-dynamo wheel's METADATA (`Requires-Dist: vllm[...]==0.31.0;
extra == 'vllm'`), which `pip install ai-dynamo[vllm]` and Dynamo's runtime images install.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

_PIN = re.compile(r"^Requires-Dist:\s*([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*==\s*([^;\s]+)\s*;.*extra\s*==\s*['\"](\w+)['\"]", re.M)
ENGINES = {"vllm": "vllm", "sglang": "sglang", "tensorrt-llm": "trtllm", "nixl": "nixl"}


def pins(metadata: str) -> dict[str, dict[str, str]]:
    """{extra: {engine: version}} of the `==` pins in a wheel's METADATA (nixl per extra, the engines by their name)."""
    out: dict[str, dict[str, str]] = {}
    for package, version, extra in _PIN.findall(metadata):
        engine = ENGINES.get(package.lower())
        if engine:
            out.setdefault(extra, {})[engine] = version
    return out


def metadata(package: str, version: str, cache: Path) -> tuple[str, dict] | None:
    """(METADATA text, where) of a release's wheel, cached."""
    from knowledge_sources import _RangeFile
    from knowledge_transports import wheel_link

    link = wheel_link(package, version)
    if link is None:
        return None
    url, name, sha = link
    path = cache / "pins" / f"{name}.METADATA"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(io.BufferedReader(_RangeFile(url), buffer_size=1 << 20)) as zf:
            member = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            path.write_bytes(zf.read(member))
    return path.read_text("utf-8", "replace"), {"tag": f"v{version}", "artifact": name, "sha256": sha}


def generate(releases: list[str], cache: Path) -> dict:
    table = {}
    for release in releases:
        got = metadata("ai-dynamo", release, cache)
        if got is None:
            continue
        text, where = got
        found = pins(text)
        table[release] = {"pins": {extra: found[extra] for extra in sorted(found)}, **where}
    return {"system": "dynamo", "what": "engine releases pinned by each ai-dynamo wheel's extras (METADATA Requires-Dist ==)",
            "repo": "ai-dynamo/dynamo", "releases": table}
