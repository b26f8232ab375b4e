"""Go template actions (`{{ ... }}`) inside a config that a controller renders before it runs (KServe's
LLMInferenceServiceConfig): a `{{ value }}` is a value set at render time (Unknown, never its text), and what sits
between `{{ if ... }}` and its `{{ end }}` is there only when the condition holds (Unknown as well)."""

from __future__ import annotations

import re

from ..model import Setting, Unknown, Worker
from ..source import Span

# An action ends at the first `}}` outside a string: a raw `...` or "..." string is one token of Go's template lexer,
# `}}` and all (golang/go@34aeeef src/text/template/parse/lex.go lexInsideAction, lexRawQuote, lexQuote), as in
# `"{{ "{{" }} .ObjectMeta.Name {{ "}}" }}"` (a literal action for the next renderer); a comment `{{/* */}}` is one
ACTION = re.compile(r"""\{\{-?\s*/\*.*?\*/\s*-?\}\}|\{\{(?:`[^`]*`|"(?:[^"\\\n]|\\.)*"|[^}`"]|\}(?!\}))*\}\}""", re.S)
_CONTROL = re.compile(r"^(if|else|end|range|with|define|template|block|/\*|break|continue)\b")
_OPENS = re.compile(r"^(if|range|with|define|block)\b")
PLACEHOLDER = re.compile(r"\$\{_T_*\}|\$_T_*")
WHY_VALUE = "a template value ({{ }}) filled in when the config is rendered"


def _inner(action: str) -> str:
    return action[2:-2].strip().lstrip("-").rstrip("-").strip()


def rewrite(text: str) -> str:
    """The same text, each character where it was, with control actions blanked and value actions turned into a
    shell variable that nothing sets (`${_T__}`), so the shell reader reads them as set at run time."""
    if "{{" not in text:
        return text

    def sub(m: re.Match) -> str:
        action = m.group(0)
        n = len(action)
        if _CONTROL.match(_inner(action)):
            return "".join(ch if ch == "\n" else " " for ch in action)
        if n >= 5:
            return "${_T" + "_" * (n - 5) + "}"
        return "$_T" + "_" * (n - 3)

    return ACTION.sub(sub, text)


def first_alternative(text: str) -> str:
    """The text with the other branches of a one-line `{{ if }}A{{ else }}B{{ end }}` blanked (same length), so that
    `value: {{ if .X }}"a"{{ else }}"b"{{ end }}` reads as one value: `A`, which `conditional_spans` then marks as
    holding only when the condition does (Unknown), instead of two scalars side by side that no YAML parser takes."""
    if "else" not in text:
        return text
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if "else" not in line or "{{" not in line:
            continue
        stack: list[list[int | None]] = []
        cuts = []
        for m in ACTION.finditer(line):
            inner = _inner(m.group(0))
            if _OPENS.match(inner):
                stack.append([m.start(), None])
            elif inner.startswith("else") and stack and stack[-1][1] is None:
                stack[-1][1] = m.start()
            elif inner.startswith("end") and stack:
                opened = stack.pop()
                if opened[1] is not None:
                    cuts.append((opened[1], m.end()))
        for a, b in cuts:
            line = line[:a] + " " * (b - a) + line[b:]
        lines[i] = line
    return "\n".join(lines)


def conditional_spans(text: str, line_col) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) positions, as (line, column), of what lies between an `{{ if }}` (or range/with) and its end."""
    return [(a, b) for a, b, _ in conditional_blocks(text, line_col)]


def conditional_blocks(text: str, line_col) -> list[tuple[tuple[int, int], tuple[int, int], bool]]:
    """(start, end, has_else) of each `{{ if }}` (range, with) block: with an `{{ else }}` it chooses between
    alternatives; without, it decides only whether what it holds is there."""
    out, stack = [], []
    for m in ACTION.finditer(text):
        inner = _inner(m.group(0))
        if _OPENS.match(inner):
            stack.append([m.end(), False])
        elif inner.startswith("else") and stack:
            stack[-1][1] = True
        elif inner.startswith("end") and stack:
            start, has_else = stack.pop()
            out.append((line_col(start), line_col(m.start()), has_else))
    return out


def mark(w: Worker, spans: list[tuple[tuple[int, int], tuple[int, int]]]) -> None:
    """Settings whose text is a template value, or that sit inside a condition, become Unknown with the reason."""

    def inside(s: Setting) -> bool:
        if s.span is None:
            return False
        at = (s.span.line, s.span.column)
        return any(a <= at < b for a, b in spans)

    for table in (w.settings, w.flags):
        for key, s in list(table.items()):
            if not s.known and PLACEHOLDER.search(s.value.reason):
                table[key] = Setting(Unknown(WHY_VALUE), s.span, s.origin)
            elif s.known and inside(s):
                table[key] = Setting(Unknown("set only when a template condition ({{ if }}) holds"), s.span, s.origin)


def templated(value: object) -> bool:
    return isinstance(value, str) and "{{" in value


def span_of(doc, path: tuple) -> Span:
    return Span(*doc.marks.value(path))
