"""What every output format's summary counts, counted once, file by file as the report is written (issue 23: the
counts, never the findings, are what a streamed report keeps to the end)."""

from __future__ import annotations

from collections import Counter


class Tally:
    """The counts a summary line, a JUnit root and the exit code need, added one file's result at a time."""

    def __init__(self):
        self.files = self.skipped = self.unreadable = self.internal = 0
        self.severity = {"error": 0, "warning": 0, "info": 0}  # every finding, internal errors included (as text says it)
        self.fixes: Counter = Counter()
        self.checked = False  # some file was not skipped (--require-files)
        self.errors = False  # some file could not be read
        self.internal_error = False  # a reader, stage or rule raised: the report is incomplete
        self.worst = None  # the highest severity of a finding that is no internal error
        self._pairs: set[int] = set()

    def add(self, r) -> None:
        self.files += not r.skipped and not r.error
        self.skipped += bool(r.skipped)
        self.unreadable += bool(r.error) and not r.crashed
        self.internal += len(r.crashes) + r.crashed + sum(f.internal for f in r.findings)
        self.checked = self.checked or not r.skipped
        self.errors = self.errors or bool(r.error)
        self.internal_error = self.internal_error or r.internal_error
        for f in r.findings:
            self.severity[f.severity.label] += 1
            if f.fix:
                self.fixes[f.fix.applicability] += 1
            if not f.internal and (self.worst is None or f.severity > self.worst):
                self.worst = f.severity
        # A pair across files is in both files' results, and a reader may give a worker the path of the file it came
        # from rather than the one read: each pair counts once. Kept as 64-bit hashes of its ends, not the ends
        # themselves (~60 bytes a pair instead of ~500); two pairs share one with a chance of about n²/2^65.
        self.add_pairs(r)

    def add_pairs(self, r) -> None:
        self._pairs.update(hash(pair_key(p)) for p in r.pairs)

    @property
    def pairs(self) -> int:
        """Prefill/decode pairs the rules compared, each once."""
        return len(self._pairs)


def pairs_checked(results) -> int:
    tally = Tally()
    for r in results:
        tally.add_pairs(r)
    return tally.pairs


def pair_key(pair) -> tuple:
    """A pair by the places of its two ends: the processes a loop starts from one line are one place."""
    return (_end(pair.prefill), _end(pair.decode))


def _end(w) -> tuple:
    return (w.path, w.name, w.role, tuple(w.span) if w.span is not None else None)
