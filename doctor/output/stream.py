"""A report written while the files are checked (issue 23): each file's part goes out when the file is done, and what
the report keeps to the end is counts (summary.Tally), not findings.

A format says what one file adds to each of its sections (`pieces`), and what surrounds them (`head`, `tail`). The
first section is written straight to the output; the sections after it (JSON's "errors" and "files", SARIF's
notifications, every JUnit suite, whose root carries totals) are kept in a spool: in memory up to 256 KiB, then in a
temporary file. A file that must wait for others (its workers are paired across files at the end, parallel.py) leaves
a hole in every section, filled in the order the files were given once its result is known: the report has the same
bytes as one built from the list of all results."""

from __future__ import annotations

import json

from .summary import Tally

_SPOOL_MEMORY = 256 * 1024  # characters kept in memory per section before a temporary file takes them


class _Spool:
    """The elements of one section, in order."""

    def __init__(self):
        self.count = 0
        self._mem: list[str] = []
        self._size = 0
        self._file = None

    def add(self, text: str) -> None:
        self.count += 1
        if self._file is None:
            self._mem.append(text)
            self._size += len(text)
            if self._size <= _SPOOL_MEMORY:
                return
            import tempfile

            self._file = tempfile.TemporaryFile("w+", encoding="utf-8", errors="surrogatepass", newline="")
            held, self._mem = self._mem, []
            for t in held:
                self._put(t)
        else:
            self._put(text)

    def _put(self, text: str) -> None:
        self._file.write(f"{len(text)}:")
        self._file.write(text)

    def __iter__(self):
        if self._file is None:
            yield from self._mem
            return
        self._file.seek(0)
        for _ in range(self.count):
            size = ""
            while (c := self._file.read(1)) != ":":
                size += c
            yield self._file.read(int(size))
        self._file.close()


class Report:
    """Base of the streamed formats. `sections`: names in output order; the first is written as it comes while no file
    is pending. `live`: (opening, separator) of the first section's elements, or None when it must wait too."""

    sections: tuple[str, ...] = ()
    live: tuple[str, str] | None = None

    def __init__(self, out, given=frozenset()):
        self.out = out
        self.given = given  # the paths of the files reported (a pair whose other end is no such file was found by partners.py)
        self.tally = Tally()
        self._spools = {name: _Spool() for name in self.sections}
        self._holes: dict[str, list[tuple[int, object]]] = {name: [] for name in self.sections}
        self._filled: dict[object, object] = {}
        self._streaming = self.live is not None
        self._written = 0  # elements of the first section already written out
        self.out.write(self.head())

    # what a format defines
    def head(self) -> str:
        return ""

    def pieces(self, r) -> dict[str, list[str]]:
        raise NotImplementedError

    def tail(self) -> None:
        raise NotImplementedError

    # what the checking feeds in
    def add(self, r) -> None:
        self.tally.add(r)
        for name, elements in self.pieces(r).items():
            for text in elements:
                if self._streaming and name == self.sections[0]:
                    opening, sep = self.live
                    self.out.write((sep if self._written else opening) + text)
                    self._written += 1
                else:
                    self._spools[name].add(text)

    def wait(self, key) -> None:
        """A file whose result comes later (`fill`), reported here in the order given."""
        self._streaming = False
        for name in self.sections:
            self._holes[name].append((self._spools[name].count, key))

    def fill(self, key, r) -> None:
        self.tally.add(r)
        self._filled[key] = r

    def close(self) -> None:
        self.tail()

    def feed(self, events) -> None:
        """Write the report of `events` (engine.stream_paths): ("file", result), ("wait", key), ("fill", key, result)."""
        for event in events:
            if event[0] == "file":
                self.add(event[1])
            elif event[0] == "wait":
                self.wait(event[1])
            else:
                self.fill(event[1], event[2])
        self.close()

    # what a format's tail writes with
    def elements(self, name: str):
        """The section's elements not yet written, holes filled."""
        holes = iter(self._holes[name])
        hole = next(holes, None)
        for i, text in enumerate(self._spools[name]):
            while hole is not None and hole[0] == i:
                yield from self.pieces(self._filled[hole[1]]).get(name, ())
                hole = next(holes, None)
            yield text
        while hole is not None:
            yield from self.pieces(self._filled[hole[1]]).get(name, ())
            hole = next(holes, None)

    def write_rest(self, names, opening: str, sep: str, closing: str = "", empty: str = "", written: int = 0) -> int:
        """Write the elements of `names` as one sequence (`written` of it already out); returns how many there were."""
        n = written
        for name in names:
            for text in self.elements(name):
                self.out.write((sep if n else opening) + text)
                n += 1
        self.out.write(closing if n else empty)
        return n


def json_element(value, indent: int) -> str:
    """`value` as `json.dump(..., indent=2)` writes it inside a document, at `indent` spaces."""
    return json.dumps(value, indent=2).replace("\n", "\n" + " " * indent)


def json_template(doc: dict) -> tuple[list[str], list[int]]:
    """The text of `doc` as `json.dump(doc, indent=2)` writes it, cut at each value that is a placeholder string
    "\\0NAME": the literal parts, and the indent of each placeholder's line."""
    text = json.dumps(doc, indent=2)
    parts, indents = [], []
    while (at := text.find('"\\u0000')) >= 0:
        end = text.index('"', at + 1) + 1
        line_start = text.rfind("\n", 0, at) + 1
        indents.append(len(text[line_start:at]) - len(text[line_start:at].lstrip(" ")))
        parts.append(text[:at])
        text = text[end:]
    parts.append(text)
    return parts, indents


def json_array(indent: int) -> tuple[str, str, str, str]:
    """(opening, separator, closing, empty) of a JSON array whose key sits at `indent` spaces."""
    inner = "\n" + " " * (indent + 2)
    return "[" + inner, "," + inner, "\n" + " " * indent + "]", "[]"
