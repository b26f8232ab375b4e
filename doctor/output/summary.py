"""What every output format's summary counts, counted once."""

from __future__ import annotations


def pairs_checked(results) -> int:
    """Prefill/decode pairs the rules compared, each once: a pair across files is in both files' results, and a
    reader may give a worker the path of the file it came from rather than the one read."""
    return len({pair_key(p) for r in results for p in r.pairs})


def pair_key(pair) -> tuple:
    """A pair by the places of its two ends: the processes a loop starts from one line are one place."""
    return (_end(pair.prefill), _end(pair.decode))


def _end(w) -> tuple:
    return (w.path, w.name, w.role, tuple(w.span) if w.span is not None else None)
