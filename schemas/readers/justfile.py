"""Justfiles (casey/just: `Justfile`, `justfile`, `*.just`): each recipe is a set of shell lines that `just NAME`
runs on its own, after the recipes it depends on.

The file is read as the shell script that says the same thing, line for line and column for column, so that the
shell reader (schemas/shell*.py) reads the processes and every position it reports is one in the Justfile:
- `NAME := "value"` / `'value'` (and `export NAME := ...`) set a variable; `{{NAME}}` in a recipe line is replaced by
  its value (just's manual, "Variables and Substitution"). The shell text names it `${_NAME}` (padded to the width of
  `{{NAME}}`), assigned where the Justfile writes it, so a value found there is located at the assignment. A value
  that is no plain string (concatenation, a function call, a recipe parameter) is left unassigned: Unknown.
  Substitution inside single quotes is not expanded by a shell, so there the value stays Unknown too.
- Variables are not in the recipes' environment unless exported (`export NAME :=`, `set export`); `$NAME` in a
  recipe line is the shell's own, which the shell text keeps apart (`_NAME` is the Justfile's).
- A recipe `name params: deps && post` becomes a shell function; which recipe runs is chosen on the command line,
  so the recipes are alternatives: the last line (past the end of the file) runs one branch per recipe, each calling
  the recipe's dependencies, the recipe and its `&&` dependencies, in that order. Processes of two recipes are
  paired only where one recipe runs the other as a dependency, or one body starts both.
- Recipes are shell lines only under a POSIX shell: with `set shell := ["python3", "-c"]`, or in a recipe whose
  shebang names another language, the lines are not read.
- A line's `@` (quiet) and `-` (ignore errors) prefixes are dropped; `set`, `alias`, `import`, `mod` and `[attribute]`
  lines run nothing. Recursive `just NAME` calls inside a recipe are not followed (the called recipe is not known to
  run: a `just port 8100` in a command substitution is a value, Unknown).
"""

from __future__ import annotations

import re

from ..formats import SHELLS, shebang_program

_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
_ASSIGN = re.compile(rf"^(export\s+)?({_NAME})\s*:=\s*")
_STRING = re.compile(r"""^("(?:[^"\\$`]|\\.)*"|'[^']*')\s*(#.*)?$""")
_BARE_REF = re.compile(rf"^({_NAME})\s*(#.*)?$")
_SUBST = re.compile(r"\{\{(?!\{)(.*?)\}\}")
_SET_EXPORT = re.compile(r"^set\s+export(\s*:=\s*true)?\s*$")
_KEYWORD_LINE = re.compile(r"^(set|alias|import|mod)\b|^\[.*\]\s*$|^!include\b")
_SET_SHELL = re.compile(r"""^set\s+shell\s*:=\s*\[\s*["']([^"']+)["']""")
SELECTOR = "JUST_RECIPE"  # the recipe named on the command line (`just NAME`), as the selector of the branches


def _shell_name(name: str) -> str:
    return name.replace("-", "_")


def _header(line: str) -> tuple[str, list[str], list[str]] | None:
    """(name, dependencies, && dependencies) of a recipe header line, else None."""
    m = re.match(rf"^@?({_NAME})", line)
    if not m or _ASSIGN.match(line) or _KEYWORD_LINE.match(line):
        return None
    quote = None
    for i in range(m.end(), len(line)):  # the first `:` outside quotes (a parameter default may hold one), not `:=`
        c = line[i]
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == ":" and line[i + 1 : i + 2] != "=":
            rest = line[i + 1 :].split("#", 1)[0]
            before, _, after = rest.partition("&&")
            return m.group(1), _deps(before), _deps(after)
        elif c == "=" and line[i + 1 : i + 2] != "=" and i == m.end():
            return None
    return None


def _deps(text: str) -> list[str]:
    out = []
    for m in re.finditer(rf"\(\s*({_NAME})[^)]*\)|({_NAME})", text):
        out.append(m.group(1) or m.group(2))
    return out


def _subst(name: str, width: int) -> str:
    """`${_NAME}` (or `${__NAME}`) padded with empty `''` to `width` characters."""
    extra = width - len(name) - 3  # `${` + `}` around the name, and p underscores: p + 2q = extra, p in {1, 2}
    p = 1 if extra % 2 else 2
    return "${" + "_" * p + name + "}" + "''" * ((extra - p) // 2)


def _placeholder(width: int) -> str:
    """An unset variable of `width` characters: a value the file does not give (Unknown to the reader)."""
    extra = width - 5  # `${_J}`
    return "${_J" + ("_" if extra % 2 else "") + "}" + "''" * (extra // 2)


def _in_single_quotes(line: str, at: int) -> bool:
    quote = None
    for c in line[:at]:
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
    return quote == "'"


def _body_line(line: str, params: set[str], continued: bool) -> str:
    stripped = line.lstrip()
    indent = len(line) - len(stripped)
    k = 0
    while not continued and k < len(stripped) and stripped[k] in "@-":  # a line's prefixes; not a continued line's `--flag`
        k += 1
    line = line[:indent] + " " * k + stripped[k:]

    def repl(m: re.Match) -> str:
        expr = m.group(1).strip()
        width = m.end() - m.start()
        if re.fullmatch(_NAME, expr) and expr not in params and not _in_single_quotes(line, m.start()):
            return _subst(_shell_name(expr), width)
        return _placeholder(width)

    return _SUBST.sub(repl, line)


def to_shell(text: str) -> str:
    """The shell script that runs what the Justfile's recipes run, with the same lines and columns (see above)."""
    lines = text.splitlines()
    out: list[str] = []
    recipes: list[tuple[str, list[str], list[str]]] = []
    export_all = any(_SET_EXPORT.match(line) for line in lines)
    shells = [m.group(1) for m in map(_SET_SHELL.match, lines) if m]
    posix = not shells or shells[-1].rsplit("/", 1)[-1] in SHELLS  # `set shell := ["python3", "-c"]`: not shell lines
    open_fn = False
    params: set[str] = set()
    in_body = continued = skip = False
    body_lines = 0
    for line in lines:
        if line[:1] in (" ", "\t"):
            if in_body and not body_lines and line.lstrip().startswith("#!"):
                skip = shebang_program(line) not in SHELLS  # a script recipe in another language (`#!/usr/bin/env python3`)
            if in_body:
                body_lines += 1
            if in_body and (skip or not posix):
                out.append("")
            elif in_body:
                out.append(_body_line(line, params, continued))
                continued = line.rstrip().endswith("\\")
            else:
                out.append("")  # a continuation of something that runs nothing (a multi-line value): not read
            continue
        if not line.strip():
            out.append("")
            continued = False
            continue
        close = "}; " if open_fn else ""
        in_body = False
        head = _header(line)
        if head is not None:
            name, deps, post = head
            recipes.append((name, deps, post))
            params = set(re.findall(rf"[\s+*$]({_NAME})", line.split(":", 1)[0][len(name) + 1 :]))
            out.append(f"{close}recipe_{_shell_name(name)}() {{")
            open_fn = in_body = True
            body_lines, skip = 0, False
            continue
        open_fn = False
        m = _ASSIGN.match(line)
        if m:
            out.append(_assignment(line, m, close, export_all))
        elif line.lstrip().startswith("#"):
            out.append(close + line if close else line)
        else:
            out.append(close.rstrip("; ") if close else "")
    branches = []
    for name, deps, post in recipes:
        calls = [f"recipe_{_shell_name(n)}" for n in deps + [name] + post if any(r[0] == n for r in recipes)]
        branches.append(f"R-{name}) {'; '.join(calls) or ':'};;")
    close = "}; " if open_fn else ""
    if branches:
        out.append(f'{close}case "${SELECTOR}" in ' + " ".join(branches) + " esac")
    return "\n".join(out) + "\n"


def _assignment(line: str, m: re.Match, close: str, export_all: bool) -> str:
    name = _shell_name(m.group(2))
    value = line[m.end() :]
    exported = bool(m.group(1)) or export_all
    sm = _STRING.match(value)
    ref = _BARE_REF.match(value)
    if sm:
        text = sm.group(1)
    elif ref:
        text = '"${_' + _shell_name(ref.group(1)) + '}"'
    else:
        return close.rstrip("; ")  # no plain string: left unassigned, Unknown where it is used
    lead = f"{close}_{name}="
    pad = m.end() - len(lead)
    shell = (" " * pad if pad > 0 else "") + lead + text + f'; __{name}="$_{name}"'
    if exported:
        shell += f'; export {m.group(2)}="$_{name}"' if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", m.group(2)) else ""
    return shell
