"""Jinja templates of a config (`deploy.yaml.j2`, `run.sh.j2`: Ansible roles, generators such as AI Configurator),
read for what is literal, as chart templates are (helm.py, gotemplate.py).

The template is turned, character for character, into the Go-template text those readers take: `{{ x }}` is already
a value set at render time; `{% if %}` / `{% elif %}` / `{% else %}` / `{% endif %}` become `{{ if }}` / `{{ else }}` /
`{{ end }}`, so what lies between is read as holding only when the condition does (Unknown); a `{% for %}` loop is read
the same way (its body may run any number of times); any other statement (`{% set %}`, `{% include %}`, `{% macro %}`
...) and every comment `{# #}` is blanked. Every line keeps its length, so each finding is at the template's own
line and column (Jinja's syntax: jinja.palletsprojects.com, Template Designer Documentation, Delimiters)."""

from __future__ import annotations

import re

from ..formats import SCRIPT_SUFFIXES
from ..knowledge.versions import Target
from ..model import Deployment

# {% ... %} (with - or + whitespace control) and {# ... #}: a string inside a statement may hold %} (Jinja's lexer reads
# string literals whole), so quoted strings are taken as units
_STATEMENT = re.compile(r"""\{%[-+]?(?P<body>(?:'[^'\\]*(?:\\.[^'\\]*)*'|"[^"\\]*(?:\\.[^"\\]*)*"|[^'"%]|%(?!\}))*?)[-+]?%\}""", re.S)
_COMMENT = re.compile(r"\{#.*?#\}", re.S)
_WORD = re.compile(r"\s*([a-z_]+)")


def _blank(text: str) -> str:
    return "".join(ch if ch == "\n" else " " for ch in text)


def _statement(m: re.Match) -> str:
    whole = m.group(0)
    word = _WORD.match(m.group("body"))
    keyword = word.group(1) if word else ""
    inner = whole[2:-2]
    if keyword in ("if", "elif", "else", "for") or keyword.startswith("end") and keyword[3:] in ("if", "for"):
        at = inner.index(keyword)
        go = {"if": "if", "elif": "else", "else": "else", "for": "if "}.get(keyword, "end")
        # same length: the keyword replaced by its Go twin, padded (`for` -> `if `, `endfor` -> `end   `)
        inner = inner[:at] + go.ljust(len(keyword)) + inner[at + len(keyword):]
        if keyword.startswith("end") or keyword == "else":
            inner = inner[:at] + go.ljust(len(inner) - at)  # `{% endif %}` holds nothing after its word that Go would read
        return "{{" + inner + "}}"
    return _blank(whole)


def as_go(text: str) -> str:
    """The template as Go-template text of the same length, line by line."""
    if "{%" not in text and "{#" not in text:
        return text
    text = _COMMENT.sub(lambda m: _blank(m.group(0)), text)
    return _STATEMENT.sub(_statement, text)


# A statement alone on its line of a script template, as the shell construct of the same meaning, so that the launch
# reader sees `{% if %}...{% else %}...{% endif %}` as the alternatives they are (never two runs' processes paired, or
# taken as neighbours) and a `{% for %}` body as a loop's
_LINE_STATEMENT = re.compile(r"^[ \t]*\{%[-+]?\s*([a-z]+)\b.*[-+]?%\}[ \t]*$")
_SHELL = {"if": "if $T;then", "elif": "elif $T;then", "else": "else", "endif": "fi", "for": "for T in 1;do", "endfor": "done"}


def _shell_lines(text: str) -> tuple[str, list[int]]:
    r"""The text with statement lines made shell, and the indices of statement lines inside a command continued with
    `\` (`--a 1 \` / `{% if x %}` / `--b 2 \`): those stay Go conditions and, once blanked, must go on continuing it."""
    lines = text.split("\n")
    inside: list[int] = []
    for i, line in enumerate(lines):
        m = _LINE_STATEMENT.match(line)
        if m is None or line.count("%}") != 1:
            continue
        if i and lines[i - 1].rstrip().endswith("\\"):
            inside.append(i)
            continue
        shell = _SHELL.get(m.group(1))
        if shell is not None and len(shell) <= len(line):
            lines[i] = shell.ljust(len(line))
    return "\n".join(lines), inside


def _continued(text: str, inside: list[int]) -> str:
    r"""Blanked statement lines inside a continued command end in `\` again, so the command goes on past them."""
    if not inside:
        return text
    lines = text.split("\n")
    for i in inside:
        if i < len(lines) and lines[i] and not lines[i].strip():
            lines[i] = lines[i][:-1] + "\\"
    return "\n".join(lines)


def read_template(path: str, rendered: str, text: str, target: Target) -> Deployment | None:
    """The deployment of a template of a script or a YAML file (`rendered`: the name it renders to), or None."""
    from . import gotemplate, read_script, read_yaml
    from .helm import _line_col

    if rendered.endswith(SCRIPT_SUFFIXES):
        # statements on lines of their own are shell if/for (alternatives, loops); one inside a command
        # (`{% if x %}--flag{% endif %}`) is a Go condition, and what it holds is unknown
        shell, inside = _shell_lines(text)
        go = as_go(shell)
        conds = gotemplate.conditional_spans(go, lambda off: _line_col(go, off))
        dep = read_script(path, _continued(gotemplate.rewrite(go), inside), target)
        for d in (dep, *dep.parts):
            for w in d.workers:
                gotemplate.mark(w, conds)
        return dep
    return read_yaml(path, as_go(text), target, templated=True)

