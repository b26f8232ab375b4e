"""llm-d router's P/D routing sidecar flags per release, for `tools/gen_knowledge.py --only llm-d-router --mirror
llm-d-router=PATH`: read from a local git mirror of llm-d/llm-d-router at each release tag (the sidecar is a Go
program with no Python package to read). Flags are found statically in its Go sources: `flag.String("port", ...)`,
`fs.StringVar(&opts.X, name, ...)` with `name` a string constant of the file, and `fs.MarkDeprecated(name, ...)`.

With them, the KV connector names the sidecar accepts: the list its start-up checks the connector flag against
(`supportedConnectors` in cmd/pd-sidecar/main.go up to 0.6, `supportedKVConnectors` in pkg/sidecar/proxy/options.go
from 0.7; any other value stops it), each entry a constant resolved through the string constants of the sidecar's
Go files (`proxy.ConnectorNIXLV2`, `KVConnectorNIXLV2 = constants.KVConnectorNIXLV2`, `... = "nixlv2"`).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = "llm-d/llm-d-router"
PROGRAM = "llm-d-routing-sidecar"
FILES = ("cmd/pd-sidecar/main.go", "pkg/sidecar/proxy/options.go")
RELEASES = ("0.4.0", "0.5.0", "0.5.1", "0.6.0", "0.6.1", "0.7.0", "0.7.1", "0.8.0", "0.9.0", "0.10.0")

_CONST = re.compile(r'^\s*(\w+)\s*(?:string\s*)?=\s*"([A-Za-z0-9][A-Za-z0-9-]*)"', re.M)
_CALL = re.compile(r'\b(?:fs|flag|flags|pflag)\.(?:[A-Z]\w*?)(?:Var)?P?\(\s*(?:&[\w.\[\]]+\s*,\s*)?("[A-Za-z0-9][A-Za-z0-9-]*"|[A-Za-z_]\w*)\s*,')
_DEPRECATED = re.compile(r'MarkDeprecated\(\s*("[A-Za-z0-9-]+"|\w+)')
SIDECAR_DIRS = ("cmd/pd-sidecar", "pkg/sidecar")
_SUPPORTED = re.compile(r'\bsupported(?:KV)?Connectors\s*=\s*(?:\[\]string|map\[string\]struct\{\})\{(.*?)\n\s*\}', re.S)
_ENTRY = re.compile(r'([A-Za-z_][\w.]*)\s*(?::\s*\{\})?\s*,')
_STRING_CONST = re.compile(r'^\s*(?:const\s+)?(\w+)\s*(?:string\s*)?=\s*"([^"]*)"', re.M)
_ALIAS_CONST = re.compile(r'^\s*(\w+)\s*=\s*(?:\w+\.)?(\w+)\s*$', re.M)


def go_flags(text: str) -> dict[str, dict]:
    """`--flag` -> {deprecated?} for the flags one Go file defines."""
    consts = dict(_CONST.findall(text))

    def name(token: str) -> str | None:
        return token.strip('"') if token.startswith('"') else consts.get(token)

    out: dict[str, dict] = {}
    for token in _CALL.findall(text):
        flag = name(token)
        if flag and not flag[0].isupper():
            out.setdefault(f"--{flag}", {})
    for token in _DEPRECATED.findall(text):
        flag = name(token)
        if flag and f"--{flag}" in out:
            out[f"--{flag}"]["deprecated"] = True
    return out


def kv_connectors(texts: list[str]) -> list[str] | None:
    """The connector names of the supported list in these Go files (one release's sidecar), each constant resolved;
    None when no list is found or an entry does not resolve to a string."""
    strings: dict[str, str] = {}
    aliases: dict[str, str] = {}
    for text in texts:
        strings.update(_STRING_CONST.findall(text))
        aliases.update((a, b) for a, b in _ALIAS_CONST.findall(text) if a != b)
    lists = [m.group(1) for text in texts for m in _SUPPORTED.finditer(text)]
    if len(lists) != 1:
        return None

    def resolve(name: str, depth: int = 0) -> str | None:
        name = name.rsplit(".", 1)[-1]
        if name in strings:
            return strings[name]
        return resolve(aliases[name], depth + 1) if name in aliases and depth < 4 else None

    names = [resolve(e) for e in _ENTRY.findall(lists[0] + ",")]
    return None if not names or None in names else sorted(set(names))  # type: ignore[arg-type]


def _go_files(mirror: Path, commit: str) -> list[str]:
    listed = subprocess.run(["git", "--git-dir", str(mirror), "ls-tree", "-r", "--name-only", commit, *SIDECAR_DIRS], capture_output=True, text=True)
    out = []
    for path in listed.stdout.split():
        if path.endswith(".go") and not path.endswith("_test.go"):
            shown = subprocess.run(["git", "--git-dir", str(mirror), "show", f"{commit}:{path}"], capture_output=True)
            out.append(shown.stdout.decode("utf-8", "replace"))
    return out


def read_connectors(mirror: Path, commits: dict[str, str]) -> dict[str, list[str]]:
    """{release: accepted KV connector names} for each release whose list was found."""
    out = {}
    for release, commit in commits.items():
        names = kv_connectors(_go_files(mirror, commit))
        if names is not None:
            out[release] = names
    return out


def read(mirror: Path) -> tuple[dict[str, dict], dict[str, str]]:
    """({release: {flag: info}}, {release: commit}) of every pinned release tag found in the mirror."""
    per_release, commits = {}, {}
    for release in RELEASES:
        tag = f"v{release}"
        rev = subprocess.run(["git", "--git-dir", str(mirror), "rev-parse", "--verify", "-q", f"{tag}^{{commit}}"], capture_output=True, text=True)
        if rev.returncode != 0:
            continue
        commits[release] = rev.stdout.strip()
        flags: dict[str, dict] = {}
        for path in FILES:
            shown = subprocess.run(["git", "--git-dir", str(mirror), "show", f"{commits[release]}:{path}"], capture_output=True)
            if shown.returncode == 0:
                for flag, info in go_flags(shown.stdout.decode("utf-8", "replace")).items():
                    flags.setdefault(flag, {}).update(info)
        if flags:
            per_release[release] = flags
    return per_release, commits


def generate(mirror: Path, assemble, ranges) -> dict:
    """The flags table in the shape of the other generated tables (`assemble` and `ranges` are gen_knowledge's)."""
    per_release, commits = read(mirror)
    versions = [v for v in RELEASES if v in per_release]
    data = assemble("llm-d-router", REPO, {PROGRAM: None}, {}, versions, {v: ({PROGRAM: per_release[v]}, {}) for v in versions})
    data["source"] = f"{REPO} git tags v{versions[0]}..v{versions[-1]} ({', '.join(FILES)}), read statically by tools/gen_knowledge.py"
    data["tags"] = {v: commits[v] for v in versions}
    data["missing"] = [v for v in RELEASES if v not in per_release]
    accepted = read_connectors(mirror, {v: commits[v] for v in versions})
    read_in = [v for v in versions if v in accepted]
    data["kv_connectors"] = {
        "says": "the values --kv-connector (from 0.7; --connector before, and where --kv-connector is not given) must take, "
                "else the sidecar stops at start",
        "read_from": "supportedConnectors (cmd/pd-sidecar/main.go) / supportedKVConnectors (pkg/sidecar/proxy/options.go)",
        "releases": read_in,
        "names": {n: {"in": ranges([n in accepted[v] for v in read_in], read_in)} for n in sorted({n for v in read_in for n in accepted[v]})},
    }
    return data
