"""The other side of a pair that the files given leave out.

A pre-commit hook (or a user) names only the files that changed: prefill in `deploy/prefill.yaml`, decode in
`deploy/decode.yaml`, and a commit that changes only the decode file's model would be checked alone and pass. So when
a named file holds a prefill or decode worker that no file given pairs with, the doctor reads the other config files
where a deployment keeps them: the same folder (files of one deployment are linked only within one folder, see
disagg.schemas.pairing.across). Inside a git work tree the folder's files are those git tracks (`git ls-files`: the
committed and staged state, which is what pre-commit checks; a stray untracked file is no partner). The files found
this way are checked with the others, but only what concerns a pair with a named file is reported, at the named
file's end (a cross-file finding is reported at both ends, engine.lint_results). `--no-partner-search` turns it off.
"""

from __future__ import annotations

import os

from disagg.schemas import pairing

from .context import LintOptions
from .files import FileResult, takes
from .files import read_path as _read

GIT_TIMEOUT_S = 10


def lonely_roles(results: list[FileResult]) -> dict[str, set[str]]:
    """folder -> the roles (prefill/decode) whose partner no file given offers, for files that hold such a worker."""
    deps = [r.deployment for r in results if r.deployment is not None]
    own = [p for d in deps for p in pairing.within(d)]
    paired = {id(w) for p in own for w in p.ends()}
    paired |= {id(w) for p in pairing.across(deps, paired) for w in p.ends()}
    out: dict[str, set[str]] = {}
    for d in deps:
        for role in ("prefill", "decode"):
            if any(id(w) not in paired for w in pairing.engines_of(d, role)):
                out.setdefault(os.path.dirname(d.path), set()).add(role)
    return out


def search_partners(results: list[FileResult], options: LintOptions, fmt: str = "auto") -> list[FileResult]:
    """Files (not among `results`) in the folder of a file with a lonely worker that hold a worker of the other role,
    or a PD router naming servers (pairing._routed)."""
    wanted = lonely_roles(results)
    if not wanted:
        return []
    given = {os.path.realpath(r.path) for r in results if r.path != "<stdin>"}
    found: list[FileResult] = []
    for folder, roles in sorted(wanted.items()):
        need = {"prefill": "decode", "decode": "prefill"}
        other = {need[r] for r in roles}
        for path in candidates(folder):
            if os.path.realpath(path) in given:
                continue
            given.add(os.path.realpath(path))
            r = _read(path, False, options, fmt)
            dep = r.deployment
            # a PD router that names servers by address says which of them pair, whatever else they differ in
            if dep is not None and (any(pairing.engines_of(dep, role) for role in other) or pairing.routes_across(dep)):
                found.append(r)
    return found


def candidates(folder: str) -> list[str]:
    """The config files of `folder` (as the given file names it, so paths compare): git's tracked ones in a work tree."""
    tracked = _git_tracked(folder)
    if tracked is not None:
        names = tracked
    else:
        try:
            names = [n for n in os.listdir(folder or ".") if os.path.isfile(os.path.join(folder or ".", n))]
        except OSError:
            return []
    return [os.path.join(folder, n) for n in sorted(names) if takes(os.path.join(folder, n))]


def _git_tracked(folder: str) -> list[str] | None:
    """Names of the files git tracks directly in `folder`, or None outside a work tree (or without git)."""
    import subprocess  # here: only a file with a lonely worker starts git; subprocess and threading cost ~8 ms of a cold start

    try:
        r = subprocess.run(["git", "ls-files", "-z", "--", "."], cwd=folder or ".", capture_output=True, timeout=GIT_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        return None
    names = [n for n in r.stdout.decode("utf-8", "surrogateescape").split("\0") if n]
    return [n for n in names if "/" not in n]
