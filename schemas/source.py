"""Load YAML with the line and column of every key and value, refusing input that would hang or exhaust memory.

A loaded document is plain Python data (dicts, lists, scalars) plus a `SourceMap` from key paths such as
`("VllmWorker", "remote-prefill")` to positions, so a validation error's `loc` or a rule's finding can point at
`file:line:col`.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

MAX_BYTES = 8 * 1024 * 1024  # a config larger than this is not a config
MAX_NODES = 200_000  # nodes after alias expansion: stops "billion laughs" documents

# PyYAML is imported by the first load_documents (~20 ms of a cold start): a run on launch scripts alone never needs it.
yaml: Any = None
_Loader: Any = None
_constructor: Any = None


def _import_yaml() -> None:
    global yaml, _Loader, _constructor
    import yaml as module

    _Loader = getattr(module, "CSafeLoader", module.SafeLoader)
    _constructor = module.constructor.SafeConstructor()
    yaml = module

Path = tuple[Any, ...]


class ConfigError(Exception):
    """Input that cannot be read as a config at all: reported as `file:line:col: message`, exit code 2."""

    def __init__(self, path: str, line: int, column: int, message: str):
        super().__init__(f"{path}:{line}:{column}: {message}")
        self.path = path
        self.line = line
        self.column = column
        self.message = message

    def __reduce__(self):  # worker processes send it back pickled; Exception's default would call __init__ with one arg
        return (ConfigError, (self.path, self.line, self.column, self.message))


class Span(NamedTuple):
    """A 1-based source position with the end of what it marks: the one position type of every reader and finding."""

    line: int
    column: int
    end_line: int
    end_column: int


class SourceMap:
    """Positions of keys and values by path; lookups fall back to the nearest ancestor that has one."""

    __slots__ = ("keys", "values", "replaced")

    def __init__(self) -> None:
        self.keys: dict[Path, Span] = {}
        self.values: dict[Path, Span] = {}
        # with `last_key_wins`: each key written again in its mapping, as (path, first key, later key, first value
        # node, later value node), in the order the later ones are written
        self.replaced: list[tuple[Path, Span, Span, Any, Any]] = []

    def key(self, path: Path) -> Span:
        """Where the key of `path` is written (a list item's own position for an index)."""
        return self._find(path, self.keys, self.values)

    def value(self, path: Path) -> Span:
        return self._find(path, self.values, self.keys)

    def _find(self, path: Path, first: dict[Path, Span], second: dict[Path, Span]) -> Span:
        path = tuple(path)
        while path:
            if path in first:
                return first[path]
            if path in second:
                return second[path]
            path = path[:-1]
        return self.values.get((), Span(1, 1, 1, 1))


class SourceDocument:
    """One YAML document of a file: its data, where each part came from, and the file's text lines."""

    __slots__ = ("path", "text", "data", "marks", "lines", "_starts")

    def __init__(self, path: str, text: str, data: Any, marks: SourceMap, lines: list[str]):
        self.path, self.text, self.data, self.marks, self.lines = path, text, data, marks, lines
        self._starts: list[int] | None = None

    def line_starts(self) -> list[int]:
        """Offset of the first character of each line (computed once)."""
        if self._starts is None:
            starts = [0]
            find = self.text.find
            i = find("\n")
            while i >= 0:
                starts.append(i + 1)
                i = find("\n", i + 1)
            self._starts = starts
        return self._starts

    def line_text(self, line: int) -> str:
        return self.lines[line - 1] if 0 < line <= len(self.lines) else ""


def _pos(node: yaml.Node) -> Span:
    start, end = node.start_mark, node.end_mark
    return Span(start.line + 1, start.column + 1, end.line + 1, end.column + 1)


def decode_text(path: str, raw: bytes) -> str:
    """Bytes to text, or a ConfigError naming where the file stops being UTF-8 text."""
    if len(raw) > MAX_BYTES:
        raise ConfigError(path, 1, 1, f"file is {len(raw) / 1e6:.1f} MB; configs over {MAX_BYTES // 2**20} MiB are refused")
    nul = raw.find(b"\x00")
    if nul >= 0:
        line, col = _line_col(raw, nul)
        raise ConfigError(path, line, col, "binary file (NUL byte): not a YAML config")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _line_col(raw, exc.start)
        raise ConfigError(path, line, col, f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8") from None
    return text[1:] if text.startswith("\ufeff") else text


def _line_col(raw: bytes, offset: int) -> tuple[int, int]:
    line = raw.count(b"\n", 0, offset) + 1
    col = offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
    return line, col


def load_documents(path: str, text: str, last_key_wins: bool = False) -> list[SourceDocument]:
    """Every YAML document of `text`, with positions. Raises ConfigError for anything that is not clean YAML.

    `last_key_wins`: a key written twice in one mapping keeps its last value instead of being an error, as the
    reader that consumes the text does (sigs.k8s.io/yaml `Unmarshal`, not `UnmarshalStrict`: kubernetes-sigs/yaml
    yaml_test.go TestUnmarshal / TestYAMLToJSONStrict)."""
    if len(text) > MAX_BYTES:
        raise ConfigError(path, 1, 1, f"file is over {MAX_BYTES // 2**20} MiB; configs that large are refused")
    if yaml is None:
        _import_yaml()
    lines = text.splitlines()
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        if lines and line > len(lines):  # libyaml reports end of input on the line after the last one
            line, col = len(lines), len(lines[-1]) + 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(path, line, col, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(path, 1, 1, f"invalid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(path, 1, 1, "invalid YAML: nested too deeply") from None
    docs = []
    for node in nodes:
        if node is None:
            continue
        marks = SourceMap()
        budget = [MAX_NODES]
        try:
            data = _convert(path, node, (), marks, budget, 0, last_key_wins)
        except RecursionError:
            raise ConfigError(path, *_pos(node)[:2], "nested too deeply") from None
        docs.append(SourceDocument(path=path, text=text, data=data, marks=marks, lines=lines))
    return docs


_MAX_DEPTH = 200
_PLAIN_COLLECTION_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})


def _convert(path: str, node: yaml.Node, at: Path, marks: SourceMap, budget: list[int], depth: int, last_key_wins: bool = False) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        p = _pos(node)
        raise ConfigError(path, p.line, p.column, f"document expands to over {MAX_NODES} nodes (alias bomb?)")
    if depth > _MAX_DEPTH:
        p = _pos(node)
        raise ConfigError(path, p.line, p.column, f"nested more than {_MAX_DEPTH} levels deep")
    marks.values.setdefault(at, _pos(node))
    if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_COLLECTION_TAGS:
        p = _pos(node)
        raise ConfigError(path, p.line, p.column, f"invalid value: tag {node.tag!r} is not allowed in a config")
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        value_nodes: dict[Any, yaml.Node] = {}
        for key_node, value_node, merged in _pairs(path, node, 0):
            if not isinstance(key_node, yaml.ScalarNode):
                p = _pos(key_node)
                raise ConfigError(path, p.line, p.column, "a mapping key must be a plain value, not a list or mapping")
            key = _convert(path, key_node, at + ("<key>",), SourceMap(), budget, depth + 1)  # a scalar, constructed as a value is
            if not isinstance(key, str):
                key = str(key)
            if key in out:
                if merged:
                    continue  # a merged key yields to the mapping's own one and to earlier merged ones (YAML 1.1 merge)
                if not last_key_wins:
                    p, first = _pos(key_node), marks.keys[at + (key,)]
                    raise ConfigError(path, p.line, p.column, f"duplicate key {key!r} (first defined at line {first.line}); YAML keeps only the last")
                marks.replaced.append((at + (key,), marks.keys[at + (key,)], _pos(key_node), value_nodes[key], value_node))
                del out[key]  # the later value, at its own place: forget where the earlier one was
                for table in (marks.keys, marks.values):
                    for k in [k for k in table if k[:len(at) + 1] == at + (key,)]:
                        del table[k]
            marks.keys[at + (key,)] = _pos(key_node)
            if last_key_wins:
                value_nodes[key] = value_node
            out[key] = _convert(path, value_node, at + (key,), marks, budget, depth + 1, last_key_wins)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(path, item, at + (i,), marks, budget, depth + 1, last_key_wins) for i, item in enumerate(node.value)]
    try:
        return _constructor.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        p = _pos(node)
        raise ConfigError(path, p.line, p.column, f"invalid value: {exc.problem}") from None
    except ValueError as exc:  # e.g. a timestamp that the resolver matched but that is not a date
        p = _pos(node)
        raise ConfigError(path, p.line, p.column, f"invalid value: {exc}") from None
    finally:
        # construct_object caches every node it builds (constructed_objects) until construct_document clears it,
        # which is never called here: without this the one module-level constructor keeps every scalar node of
        # every file alive (issue 23: doctor's memory grew with the number of files).
        _constructor.constructed_objects.clear()


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _pairs(path: str, node: yaml.MappingNode, depth: int) -> list[tuple[yaml.Node, yaml.Node, bool]]:
    """The key/value nodes of a mapping with YAML 1.1 merge keys (`<<: *anchor`, `<<: [*a, *b]`) resolved: the
    mapping's own keys first, then each merged mapping's in order; a merged value keeps the anchor's position."""
    own: list[tuple[yaml.Node, yaml.Node, bool]] = []
    merged: list[tuple[yaml.Node, yaml.Node, bool]] = []
    for key_node, value_node in node.value:
        if not (isinstance(key_node, yaml.ScalarNode) and key_node.tag == _MERGE_TAG):
            own.append((key_node, value_node, False))
            continue
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for src in sources:
            if not isinstance(src, yaml.MappingNode) or src.tag not in _PLAIN_COLLECTION_TAGS:
                p = _pos(src)
                raise ConfigError(path, p.line, p.column, "a merge key (<<) takes a mapping or a list of mappings")
            if depth > _MAX_DEPTH:
                p = _pos(src)
                raise ConfigError(path, p.line, p.column, f"merge keys nested more than {_MAX_DEPTH} levels deep")
            merged.extend((k, v, True) for k, v, _ in _pairs(path, src, depth + 1))
    return own + merged


_NOQA = re.compile(r"#\s*disagg:\s*noqa(?::\s*(?P<codes>[A-Za-z0-9]+(?:\s*,\s*[A-Za-z0-9]+)*))?", re.IGNORECASE)
_SELECTOR = re.compile(r"DG[0-9]{0,3}|ALL", re.IGNORECASE)


def noqa_codes(line_text: str) -> frozenset[str] | None:
    """The codes a `# disagg: noqa: DG101,DG2` comment suppresses on its line; `{"ALL"}` for a bare noqa; None if absent."""
    m = _NOQA.search(line_text)
    if not m:
        return None
    codes = m.group("codes")
    if not codes:
        return frozenset({"ALL"})
    # A code that is not one (`DG1O1`, with a letter O) suppresses nothing rather than a whole family.
    return frozenset(c.strip().upper() for c in codes.split(",") if _SELECTOR.fullmatch(c.strip()))
