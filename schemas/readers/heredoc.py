"""Files a launch script writes itself and then hands to an engine: `cat > F <<EOF ... EOF` (also `<<'EOF'`,
`<<-EOF`, `cat <<EOF > F`, `tee F <<EOF`), and one-line writes `echo 'TEXT' > F` / `printf 'TEXT' > F` (single quotes:
literal; printf turns `\n` into a new line, and a `%` directive makes the text unknown). The written text is read as the file F, with positions in the script,
so that what a finding says about F points at the line of the script that wrote it.

Only the here-document's own text is read: in an unquoted one (`<<EOF`) the shell expands `$VAR` and `$(...)` when
the script runs, so a value that holds one is unknown; in a quoted one (`<<'EOF'`) the text is literal."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from typing import Any

from ..model import Unknown
from ..source import ConfigError, SourceDocument, Span, load_documents

_START = re.compile(r"""<<(?P<dash>-?)[ \t]*(?P<q>['"]?)(?P<tag>[A-Za-z_][A-Za-z0-9_]*)(?P=q)""")
# the command that writes the here-document to a file: `cat > F`, `cat >> F`, `cat <<EOF > F`, `tee [-a] F`
_CAT = re.compile(r"""(?:^|[\s;&|(])cat\b[^|;&]*?>>?[ \t]*(?P<f>[^\s;&|<>]+)""")
_TEE = re.compile(r"""(?:^|[\s;&|(])tee(?:[ \t]+-a)?[ \t]+(?P<f>[^\s;&|<>-][^\s;&|<>]*)""")


def written_files(path: str, text: str) -> dict[str, tuple[SourceDocument, tuple, Any, Callable[[Span], Span]]]:
    """File name (its last path component) -> (document, base key path, data, span mapper into the script), for every
    YAML/JSON file the script writes with a here-document; a later write of the same name replaces an earlier one."""
    lines = text.splitlines()
    out: dict[str, tuple[SourceDocument, tuple, Any, Callable[[Span], Span]]] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" not in line and ("'" not in line or ">" not in line):
            i += 1  # neither pattern below can match a line without these (a 1 MB script: most lines)
            continue
        one = _ONE_LINE.match(line)
        if one is not None:
            found = _one_line(path, one, i + 1)
            if found is not None:
                out[found[0]] = found[1]
            i += 1
            continue
        m = _START.search(line)
        if m is None or line.lstrip().startswith("#"):
            i += 1
            continue
        body, tabs, j = _body(lines, i, m)
        target = _target(lines[i])
        if target is not None and j < len(lines):
            found = _read(path, "\n".join(body) + "\n", i + 1, tabs, expanded=not m.group("q"))
            if found is not None:
                out[target] = found
        i = j + 1
    return out


# `echo 'TEXT' > F`, `printf 'TEXT' > F` (bash(1): single quotes keep TEXT literal; printf(1) interprets `\n`)
_ONE_LINE = re.compile(r"""^[ \t]*(?P<cmd>echo|printf)[ \t]+'(?P<text>[^']*)'[ \t]*>[ \t]*(?P<f>[^\s;&|<>]+)[ \t]*$""")


def _one_line(path: str, m: re.Match, line: int):
    name = os.path.basename(m.group("f").strip("'\""))
    text = m.group("text")
    if not name or "$" in name or (m.group("cmd") == "printf" and "%" in text):
        return None
    body = text.replace("\\n", "\n") if m.group("cmd") == "printf" else text
    try:
        docs = load_documents(path, body + "\n")
    except ConfigError:
        return None
    if not docs or not isinstance(docs[0].data, dict):
        return None
    start = m.start("text") + 1  # column of the text's first character
    one_line = "\n" not in body

    def to_file(span: Span) -> Span:
        if one_line:  # every character where it is written
            return Span(line, start + span.column - 1, line, start + span.end_column - 1)
        return Span(line, start, line, m.end("text") + 1)  # printf's lines are one line of the script

    return name, (docs[0], (), docs[0].data, to_file)


def _body(lines: list[str], i: int, m: re.Match) -> tuple[list[str], list[int], int]:
    """The lines of the here-document opened on line `i` (tabs stripped for `<<-`), the tabs stripped from each,
    and the index of its closing line."""
    tag, strip = m.group("tag"), bool(m.group("dash"))
    body: list[str] = []
    tabs: list[int] = []
    j = i + 1
    while j < len(lines) and (lines[j].lstrip("\t") if strip else lines[j]) != tag:
        line = lines[j].lstrip("\t") if strip else lines[j]
        tabs.append(len(lines[j]) - len(line))
        body.append(line)
        j += 1
    return body, tabs, j


def here_documents(lines: list[str]) -> Iterator[tuple[int, re.Match, list[str], int]]:
    """(index of the opening line, its `<<TAG` match, the body's lines, index of the closing line) of every
    here-document whose closing line is in the text; a commented-out opener opens none."""
    i = 0
    while i < len(lines):
        m = _START.search(lines[i])
        if m is None or lines[i].lstrip().startswith("#"):
            i += 1
            continue
        body, _, j = _body(lines, i, m)
        if j < len(lines):
            yield i, m, body, j
        i = j + 1


def written_scripts(text: str) -> list[tuple[str, int, str]]:
    """(file name, line of the write, text) of every shell script (`*.sh`) the script writes with a here-document:
    what it starts runs only when something runs that file."""
    out = []
    lines = text.splitlines()
    for i, _, body, _ in here_documents(lines):
        target = _target(lines[i])
        if target is not None and target.endswith((".sh", ".bash")):
            out.append((target, i + 1, "\n".join(body) + "\n"))
    return out


def _target(line: str) -> str | None:
    m = _CAT.search(line) or _TEE.search(line)
    if m is None:
        return None
    name = os.path.basename(m.group("f").strip("'\""))
    return name if name and "$" not in name and "`" not in name else None


def _read(path: str, body: str, first: int, tabs: list[int], expanded: bool):
    """The first document of the body (script line `first` + 1 is its line 1), or None when it is no mapping."""
    try:
        docs = load_documents(path, body)
    except ConfigError:
        return None
    if not docs or not isinstance(docs[0].data, dict):
        return None

    def to_file(span: Span) -> Span:
        def col(line: int, c: int) -> int:
            return c + (tabs[line - 1] if 0 < line <= len(tabs) else 0)

        return Span(span.line + first, col(span.line, span.column), span.end_line + first, col(span.end_line, span.end_column))

    data = _run_time(docs[0].data) if expanded else docs[0].data
    return docs[0], (), data, to_file


def _run_time(node: Any) -> Any:
    """Values the shell expands when the script runs (`$TP`, `$(nproc)`, backquotes) as Unknown."""
    if isinstance(node, dict):
        return {k: _run_time(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_run_time(v) for v in node]
    if isinstance(node, str) and ("$" in node or "`" in node):
        return Unknown(f"{node} is expanded when the script runs")
    return node


# `cat <<EOF` whose output goes to the terminal (stdout, or stderr with `>&2`): a usage text printed, never run
_PRINTED = re.compile(r"""^[ \t]*cat(?:[ \t]+1?>&2)?[ \t]*<<(?P<dash>-?)[ \t]*(?P<q>['"]?)(?P<tag>[A-Za-z_][A-Za-z0-9_]*)(?P=q)(?:[ \t]+1?>&2)?[ \t]*$""")


def _printed(lines: list[str]) -> Iterator[tuple[int, re.Match, list[str], list[int], int]]:
    """(opening line index, its match, body lines, tabs stripped from each, closing line index) of every here-document
    that `cat` only prints and whose closing line is in the text (one never closed runs to the end: none after it)."""
    i = 0
    while i < len(lines):
        m = _PRINTED.match(lines[i])
        if m is None:
            i += 1
            continue
        body, tabs, j = _body(lines, i, m)
        if j >= len(lines):
            return
        yield i, m, body, tabs, j
        i = j + 1


def without_printed_text(text: str) -> str:
    """The script with the bodies (and closing tags) of here-documents that `cat` only prints blanked (same length, same lines): the
    shell does not run them, so a `bash other.sh` in a usage text is no script this file runs."""
    if "<<" not in text:
        return text
    lines = text.split("\n")
    changed = False
    for i, _, _, _, j in _printed(lines):
        for k in range(i + 1, j + 1):  # the body and its closing tag, which the shell does not run either
            lines[k] = " " * len(lines[k])
        changed = True
    return "\n".join(lines) if changed else text


def printed_bodies(text: str) -> dict[int, tuple[str, list[int], bool]]:
    """The here-documents that `cat` only prints (`cat <<EOF`, nothing written to a file), by the 1-based line of the
    command that opens them: (body text, the file offset of each of its characters, quoted tag). A function whose
    body prints one is what `$(f ARGS)` gives (shell_output.py); `<<-` strips leading tabs, as the shell does."""
    if "<<" not in text:
        return {}
    lines = text.split("\n")
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    out: dict[int, tuple[str, list[int], bool]] = {}
    for i, m, body, tabs, _ in _printed(lines):
        chars: list[str] = []
        offs: list[int] = []
        for k, (line, tab) in enumerate(zip(body, tabs)):
            if k:
                chars.append("\n")
                offs.append(starts[i + 1 + k] - 1)  # the newline that ends the line before
            chars.append(line)
            offs.extend(range(starts[i + 1 + k] + tab, starts[i + 1 + k] + tab + len(line)))
        out[i + 1] = ("".join(chars), offs, bool(m.group("q")))
    return out
