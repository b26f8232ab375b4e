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
        return "{{" + inner.replace("\n", " ") + "}}" if "\n" not in inner else "{{" + inner + "}}"
    return _blank(whole)


def as_go(text: str) -> str:
    """The template as Go-template text of the same length, line by line."""
    if "{%" not in text and "{#" not in text:
        return text
    text = _COMMENT.sub(lambda m: _blank(m.group(0)), text)
    return _STATEMENT.sub(_statement, text)


def read_template(path: str, rendered: str, text: str, target: Target) -> Deployment | None:
    """The deployment of a template of a script or a YAML file (`rendered`: the name it renders to), or None."""
    from . import gotemplate, read_script, read_yaml
    from .helm import _line_col

    go = as_go(text)
    if rendered.endswith(SCRIPT_SUFFIXES):
        conds = gotemplate.conditional_spans(go, lambda off: _line_col(go, off))
        dep = read_script(path, gotemplate.rewrite(go), target)
        for d in (dep, *dep.parts):
            for w in d.workers:
                # a condition around the whole command only decides whether the process starts: its flags are as
                # written; one inside the command (`{% if x %}--flag{% endif %}`) makes what it holds unknown
                at = (w.span.line, w.span.column) if w.span is not None else None
                gotemplate.mark(w, [c for c in conds if at is None or not c[0] <= at < c[1]])
        return dep
    return read_yaml(path, go, target, templated=True)

