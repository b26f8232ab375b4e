"""YAML written inside a YAML string (a ConfigMap's `data`, Helm values' `pluginsCustomConfig` or a block string, an
env value), read with positions that point into the outer file; a Dynamo v0 service config so written is read as one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ..shell import ShellReader
from ..source import ConfigError, SourceDocument, SourceMap, Span, load_documents
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


def block_strings(data: Any, at: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """(path, text) of every string of more than one line in a document (chart values carry whole files so)."""
    if isinstance(data, dict):
        for k, v in data.items():
            yield from block_strings(v, at + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from block_strings(v, at + (i,))
    elif isinstance(data, str) and "\n" in data.strip():
        yield at, data


def v0_document(doc: SourceDocument, path: tuple, text: str, literal: Callable[[str], str] | None = None) -> SourceDocument | None:
    """The Dynamo v0 service config written in a string of `doc` (chart values' block string, a ConfigMap's `data`
    entry, DYN_DEPLOYMENT_CONFIG) as a document whose every position is in `doc`, so that every reader and rule (fixes
    included) works on it as on a file; None when the string is no v0 config by the test a whole file passes
    (config.looks_like_dynamo_v0).

    `dynamo serve -f FILE` loads that one YAML file as the service configs of the process it starts (ai-dynamo/dynamo
    @145f7e156998b2af2a5a3552a881ac1ee9c5277d deploy/sdk/src/dynamo/sdk/cli/serve.py: resolve_service_config(config_file)
    into DYNAMO_SERVICE_CONFIG); a ConfigMap's `data` key is the file of that name in the volume that mounts it.
    `literal`: as for embedded_yaml (helm.literal_text: a `{{ }}` action in the string, a Helm template's or values' a
    chart passes through `tpl`, kept in place as a value filled in when it is rendered, `rendered`)."""
    from ..config import looks_like_dynamo_v0

    found = embedded_yaml(doc, path, text, literal=literal)
    if found is None or len(found[0]) != 1 or not looks_like_dynamo_v0(found[0][0].data):
        return None
    inner, to_file = found[0][0], found[1]
    marks = SourceMap()
    marks.keys = {p: to_file(s) for p, s in inner.marks.keys.items()}
    marks.values = {p: to_file(s) for p, s in inner.marks.values.items()}
    return SourceDocument(doc.path, doc.text, inner.data, marks, doc.lines)


def rendered(value: Any) -> bool:
    """A value that is a template action's placeholder (helm.literal_text): filled in when rendered, Unknown here."""
    from . import gotemplate

    return isinstance(value, str) and bool(gotemplate.PLACEHOLDER.search(value))
