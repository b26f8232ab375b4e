"""Wrapper scripts beside a launch script that run their arguments unchanged (`./run-with-new-libstdc.sh python3 -m
sglang.launch_server ...`, whose body sets up the environment and ends in `exec "$@"`): the command after such a
wrapper is read as the command it runs. A wrapper that is not beside the script, or that touches its arguments
(`shift`, `$1`, `$*`, `${@:2}`) or runs them other than by a final `exec "$@"` / `"$@"`, is not one: nothing after it
is read."""

from __future__ import annotations

import os
import re

_CALL = re.compile(r"""(?m)^[ \t]*(?:[A-Za-z_][A-Za-z0-9_]*=\S*[ \t]+)*(?P<w>(?:\./)?[A-Za-z0-9_.-]+\.sh)[ \t]+\S""")
_RUNS = re.compile(r"""^(?:exec[ \t]+)?"\$@"$""")
_TOUCHES = re.compile(r"""\bshift\b|\$[1-9*#]|\$\{[@*#1-9]|\$@""")


def passthrough_wrappers(path: str, text: str) -> frozenset[str]:
    """Names of the scripts this one calls, found in its folder, that run their arguments as they are."""
    if ".sh" not in text:  # what _CALL needs: no scan of a long script line by line when it calls no script
        return frozenset()
    folder = os.path.dirname(os.path.abspath(path))
    out = set()
    for m in _CALL.finditer(text):
        name = m.group("w")
        file = os.path.join(folder, name)
        try:
            if os.path.isfile(file) and os.path.getsize(file) < 65536:
                with open(file, encoding="utf-8", errors="replace") as f:
                    if _passes_through(f.read()):
                        out.add(os.path.basename(name))
        except OSError:
            continue
    return frozenset(out)


def _passes_through(body: str) -> bool:
    lines = [ln.strip() for ln in body.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if not lines or not _RUNS.match(lines[-1]):
        return False
    return not any(_TOUCHES.search(ln) for ln in lines[:-1])
