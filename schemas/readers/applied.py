"""Manifests and chart values that a deploy script hands to Kubernetes in here-documents: `kubectl apply -f - <<EOF`,
`cat <<EOF | kubectl apply -f -` (also `create`, `replace`, and `oc`), and a file the script writes with a
here-document (`cat > F <<EOF`) that a later line gives to `kubectl ... -f F` or `helm ... -f F` / `--values F`.

Such a script starts no server itself; what runs is what those documents declare, so they are read as the YAML file
they are, at the script's own lines and columns: every other line of the script is blanked and each here-document
keeps its lines, after a `---` on the line that opens it. A here-document the shell expands (`<<EOF`) has its `$VAR`
and `$(...)` filled in when the script runs: the readers take such a value as unknown, as in any manifest. `<<-EOF`
(leading tabs stripped by the shell) is not read: tabs cannot indent YAML, so its text is not what kubectl receives."""

from __future__ import annotations

import os
import re

from .heredoc import _target, here_documents

# `kubectl|oc apply|create|replace ... -f -` (or --filename=-): the command reads the manifest from its standard input
_APPLY_STDIN = re.compile(r"\b(?:kubectl|oc)\b.*?\b(?:apply|create|replace)\b.*?(?:-f|--filename)(?:[ \t]+|=)-(?=\s|$)")
# `kubectl|oc ... -f F`, `helm ... -f F`, `--values F`, `--values=F`: the file given to Kubernetes or a chart
_GIVEN = r"""(?:-f|--filename|--values)(?:[ \t]+|=)(?P<f>[^\s;&|<>]+)"""
# `HELM_CMD="helm -n ${namespace}"`: a variable that holds the tool's command, run later as `${HELM_CMD} upgrade ...`
_TOOL_VAR = re.compile(r"""^[ \t]*(?:export[ \t]+)?(?P<v>[A-Za-z_][A-Za-z0-9_]*)=["']?(?:kubectl|oc|helm)\b""", re.M)


def applied_text(text: str) -> str | None:
    """The script's text with only the here-documents it applies or gives to helm kept (each after a `---`), every
    other line blank, so that line and column are the script's; None when it applies none."""
    lines = text.splitlines()
    keep: list[tuple[int, int]] = []  # (opening line index, closing line index)
    written: dict[str, tuple[int, int]] = {}
    bodies: set[int] = set()
    for i, m, _, j in here_documents(lines):
        bodies.update(range(i + 1, j + 1))
        if not m.group("dash"):
            if any(_APPLY_STDIN.search(part) for part in _segments(lines[i])):
                keep.append((i, j))
            elif (name := _target(lines[i])) is not None:
                written[name] = (i, j)
    if written:
        tools = ["kubectl", "oc", "helm"] + [rf"\$\{{?{v}\}}?" for v in _TOOL_VAR.findall(text)]
        given_re = re.compile(rf"(?:^|[\s(])(?:{'|'.join(tools)})(?=\s).*?" + _GIVEN)
        given = {os.path.basename(g.group("f").strip("'\"")) for k, line in enumerate(lines) if k not in bodies
                 for part in _segments(line) for g in given_re.finditer(part)}
        keep += [span for name, span in written.items() if name in given]
    if not keep:
        return None
    out = [""] * len(lines)
    for i, j in keep:
        out[i] = "---"
        out[i + 1 : j] = lines[i + 1 : j]
    return "\n".join(out) + "\n"


def _segments(line: str) -> list[str]:
    """The commands of one line, split at pipes and `;` / `&&` (a here-document's opener may sit in any of them)."""
    return [p for p in re.split(r"\|\|?|;|&&", line) if p.strip()]
