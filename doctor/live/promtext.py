"""A parser for the Prometheus text exposition format (0.0.4), small enough to need no dependency."""

from __future__ import annotations

import math
import re

Sample = tuple[str, tuple[tuple[str, str], ...], float]  # name, sorted labels, value

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(?:\s+-?\d+)?\s*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


class PromParseError(ValueError):
    pass


def _value(text: str) -> float:
    low = text.lower()
    if low in ("+inf", "inf"):
        return math.inf
    if low == "-inf":
        return -math.inf
    if low == "nan":
        return math.nan
    return float(text)


def _labels(text: str, lineno: int) -> tuple[tuple[str, str], ...]:
    body = text[1:-1]
    out = []
    pos = 0
    while pos < len(body):
        m = _LABEL.match(body, pos)
        if not m:
            if body[pos:].strip() in ("", ","):
                break
            raise PromParseError(f"line {lineno}: bad label set {text[:80]!r}")
        value = re.sub(r'\\\\|\\"|\\n', lambda x: _UNESCAPE[x.group(0)], m.group(2))
        out.append((m.group(1), value))
        pos = m.end()
    return tuple(sorted(out))


def parse(text: str) -> list[Sample]:
    """Every sample of a scrape; comments and blank lines are skipped, a malformed line raises PromParseError."""
    samples: list[Sample] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            raise PromParseError(f"line {lineno}: not a sample: {line[:80]!r}")
        try:
            value = _value(m.group(3))
        except ValueError:
            raise PromParseError(f"line {lineno}: bad value {m.group(3)[:40]!r}") from None
        samples.append((m.group(1), _labels(m.group(2), lineno) if m.group(2) else (), value))
    return samples
