"""Kubernetes label selection, in one place: which pods a selector picks, by the rules the API server applies.

An equality-based selector (a Service's `spec.selector`, a `matchLabels`) picks a pod that carries every one of its
key=value pairs; a set-based selector string (`a=b,c!=d,e in (x,y),f notin (z),g,!h`, as kubectl's `-l` and the
client libraries' label selectors take it) picks a pod that meets every term
(kubernetes/apimachinery pkg/labels/selector.go, Parse and Requirement.Matches)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any


def holds(labels: Mapping[str, str], wanted: Mapping[Any, Any]) -> bool:
    """Every key=value of `wanted` is among `labels` (values compared as the strings they are written as)."""
    return all(labels.get(str(k)) == str(v) for k, v in wanted.items())


def parse_label_selector(text: str) -> list[tuple[str, str, frozenset[str]]] | None:
    """A Kubernetes label selector (`a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, comma-joined) as
    (key, op, values) terms; None when it is not one (or holds a value set at run time)."""
    if "$" in text:
        return None
    parts, depth, cur = [], 0, ""
    for c in text:
        depth += c == "("
        depth -= c == ")"
        if c == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += c
    parts.append(cur)
    out = []
    for p in (p.strip() for p in parts if p.strip()):
        m = re.fullmatch(r"([\w./-]+)\s+(in|notin)\s*\(([^()]*)\)", p)
        if m:
            out.append((m.group(1), m.group(2), frozenset(v.strip() for v in m.group(3).split(",") if v.strip())))
            continue
        m = re.fullmatch(r"([\w./-]+)\s*(==|!=|=)\s*([\w./-]*)", p)
        if m:
            out.append((m.group(1), "notin" if m.group(2) == "!=" else "in", frozenset({m.group(3)})))
            continue
        m = re.fullmatch(r"(!?)([\w./-]+)", p)
        if m is None:
            return None
        out.append((m.group(2), "absent" if m.group(1) else "exists", frozenset()))
    return out


def selects(terms: list[tuple[str, str, frozenset[str]]], labels: Mapping[str, str]) -> bool:
    """The pod's labels meet every term of a parsed set-based selector (no terms: every pod)."""
    for key, op, values in terms:
        have = labels.get(key)
        if (op == "in" and have not in values) or (op == "notin" and have in values) or (op == "exists" and have is None) \
                or (op == "absent" and have is not None):
            return False
    return True
