"""YAML written inside a YAML string (a ConfigMap's `data`, Helm values' `pluginsCustomConfig`, an env value), read
with positions that point into the outer file."""

from __future__ import annotations

from collections.abc import Callable

from ..shell import ShellReader
from ..source import ConfigError, SourceDocument, Span, load_documents
from .common import scalar_offsets


def embedded_yaml(doc: SourceDocument, path: tuple, text: str, literal: Callable[[str], str] | None = None,
                  last_key_wins: bool = False) -> tuple[list[SourceDocument], Callable[[Span], Span]] | None:
    """The documents of a YAML string value and a function from their spans to spans in `doc`; None if not YAML.
    `literal`: what to read instead of the text, each character where it was (Go template actions as placeholders);
    `last_key_wins`: a key written twice keeps its last value, where the consumer reads it so (source.load_documents)."""
    try:
        inner = load_documents(doc.path, literal(text) if literal else text, last_key_wins=last_key_wins)
    except ConfigError:
        return None
    offs = scalar_offsets(doc, path, text)
    reader = ShellReader(doc.text)
    starts = [0] + [k + 1 for k, ch in enumerate(text) if ch == "\n"]

    def to_file(span: Span) -> Span:
        a = starts[span.line - 1] + span.column - 1 if span.line - 1 < len(starts) else 0
        b = starts[span.end_line - 1] + span.end_column - 2 if span.end_line - 1 < len(starts) else a
        oa = offs[a] if 0 <= a < len(offs) and offs[a] >= 0 else next((o for o in offs if o >= 0), 0)
        ob = offs[b] if 0 <= b < len(offs) and offs[b] >= 0 else oa
        la, ca = reader.line_col(oa)
        lb, cb = reader.line_col(max(ob, oa))
        return Span(la, ca, lb, cb + 1)

    return inner, to_file
