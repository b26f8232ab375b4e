"""llm-d router's P/D routing sidecar flags per release, for `tools/gen_knowledge.py --only llm-d-router --mirror
llm-d-router=PATH`: read from a local git mirror of llm-d/llm-d-router at each release tag (the sidecar is a Go
program with no Python package to read). Flags are found statically in its Go sources: `flag.String("port", ...)`,
`fs.StringVar(&opts.X, name, ...)` with `name` a string constant of the file, and `fs.MarkDeprecated(name, ...)`.
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


def generate(mirror: Path, assemble) -> dict:
    """The flags table in the shape of the other generated tables (`assemble` is gen_knowledge's)."""
    per_release, commits = read(mirror)
    versions = [v for v in RELEASES if v in per_release]
    data = assemble("llm-d-router", REPO, {PROGRAM: None}, {}, versions, {v: ({PROGRAM: per_release[v]}, {}) for v in versions})
    data["source"] = f"{REPO} git tags v{versions[0]}..v{versions[-1]} ({', '.join(FILES)}), read statically by tools/gen_knowledge.py"
    data["tags"] = {v: commits[v] for v in versions}
    data["missing"] = [v for v in RELEASES if v not in per_release]
    return data
