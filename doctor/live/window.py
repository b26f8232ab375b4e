"""Immutable snapshots, one per tick, and a sliding window that turns counters into rates and histograms into
quantiles."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

Rows = tuple[tuple[Mapping[str, str], float], ...]


@dataclass(frozen=True)
class WorkerView:
    worker_id: str
    role: str
    pid: int | None
    up: bool
    device: str
    metrics_url: str | None
    restarts: int = 0
    last_error: str | None = None
    host: str | None = None  # the address the worker is reached at (a disagg multi-host run lists it)
    kv_address: str | None = None  # where it says peers reach its KV
    last_seen: float | None = None  # wall time of the last scrape that listed it up (None: up in this one, or never seen up)


@dataclass(frozen=True)
class Snapshot:
    t: float  # seconds since the watch began
    wall: float  # time.time()
    frontend: str
    frontend_error: str | None
    signals: Mapping[str, Rows]  # frontend signals (aliases resolved)
    worker_signals: Mapping[str, Mapping[str, Rows]]  # worker id -> its own /metrics signals
    workers: tuple[WorkerView, ...]
    utilisation: Mapping[str, object]  # worker id -> Reading
    utilisation_notes: tuple[str, ...] = ()
    systems: tuple[str, ...] = ()
    _memo: dict = field(default_factory=dict, compare=False, repr=False)  # a snapshot lives ~30 ticks in the window

    def total(self, signal: str, **labels: str) -> float | None:
        key = (signal, *sorted(labels.items()))
        if key in self._memo:
            return self._memo[key]
        rows = self.signals.get(signal)
        value = None if rows is None else sum(v for lab, v in rows if all(lab.get(k) == want for k, want in labels.items()))
        self._memo[key] = value
        return value

    def totals_by(self, signal: str, label: str) -> dict[str, float] | None:
        """The signal summed per value of one label (None when the signal is absent); one pass, remembered."""
        key = ("by", signal, label)
        if key not in self._memo:
            rows = self.signals.get(signal)
            out = None if rows is None else {}
            for lab, v in rows or ():
                k = lab.get(label)
                if k is not None:
                    out[k] = out.get(k, 0.0) + v
            self._memo[key] = out
        return self._memo[key]

    def worker_total(self, worker_id: str, signal: str) -> float | None:
        rows = self.worker_signals.get(worker_id, {}).get(signal)
        return None if rows is None else sum(v for _, v in rows)


def snapshot_to_json(snap: Snapshot) -> dict:
    """A snapshot as plain JSON (one line of a `disagg top --record` file)."""
    rows = lambda sig: {k: [[dict(lab), v] for lab, v in r] for k, r in sig.items()}  # noqa: E731
    return {
        "t": snap.t, "wall": snap.wall, "frontend": snap.frontend, "frontend_error": snap.frontend_error,
        "signals": rows(snap.signals), "worker_signals": {w: rows(sig) for w, sig in snap.worker_signals.items()},
        "workers": [{k: v for k, v in w.__dict__.items() if v is not None or k not in ("host", "kv_address", "last_seen")} for w in snap.workers],
        "utilisation": {w: {"percent": r.percent, "source": r.source, "memory_used": r.memory_used, "detail": r.detail} for w, r in snap.utilisation.items()},
        "utilisation_notes": list(snap.utilisation_notes), "systems": list(snap.systems),
    }


def snapshot_from_json(d: dict) -> Snapshot:
    from .utilisation import Reading

    thaw = lambda sig: freeze({k: [(lab, v) for lab, v in r] for k, r in sig.items()})  # noqa: E731
    return Snapshot(
        t=d["t"], wall=d["wall"], frontend=d["frontend"], frontend_error=d.get("frontend_error"), signals=thaw(d["signals"]),
        worker_signals={w: thaw(sig) for w, sig in d.get("worker_signals", {}).items()},
        workers=tuple(WorkerView(**w) for w in d.get("workers", [])),
        utilisation={w: Reading(**r) for w, r in d.get("utilisation", {}).items()},
        utilisation_notes=tuple(d.get("utilisation_notes", ())), systems=tuple(d.get("systems", ())),
    )


def freeze(signals: dict[str, list[tuple[dict, float]]]) -> Mapping[str, Rows]:
    return MappingProxyType({k: tuple((MappingProxyType(dict(lab)), v) for lab, v in rows) for k, rows in signals.items()})


@dataclass
class Window:
    """The last `seconds` of snapshots (at least two once two exist)."""

    seconds: float = 30.0
    snaps: deque = field(default_factory=deque)

    def add(self, snap: Snapshot) -> None:
        self.snaps.append(snap)
        while len(self.snaps) > 2 and snap.t - self.snaps[0].t > self.seconds:
            self.snaps.popleft()

    @property
    def first(self) -> Snapshot | None:
        return self.snaps[0] if self.snaps else None

    @property
    def last(self) -> Snapshot | None:
        return self.snaps[-1] if self.snaps else None

    @property
    def span(self) -> float:
        return self.last.t - self.first.t if len(self.snaps) > 1 else 0.0

    def delta(self, signal: str, **labels: str) -> float:
        """Increase of a counter over the window (a reset counts from zero, as Prometheus' increase() does)."""
        return self._increase(lambda snap: snap.total(signal, **labels))

    def _increase(self, value_of) -> float:
        if len(self.snaps) < 2:
            return 0.0
        total = 0.0
        prev = None
        for snap in self.snaps:
            if snap.frontend_error:
                continue  # nothing known about this tick
            v = value_of(snap)
            if v is None:
                v = 0.0  # a labelled counter appears only at its first increment: before that it was zero
            if prev is not None:
                total += v - prev if v >= prev else v
            prev = v
        return total

    def rate(self, signal: str, **labels: str) -> float:
        return self.delta(signal, **labels) / self.span if self.span > 0 else 0.0

    def by_label(self, signal: str, label: str) -> dict[str, float]:
        """Counter increase per value of one label."""
        last = self.last
        if last is None or signal not in last.signals:
            return {}
        def value_of(v: str):
            return lambda snap: None if (by := snap.totals_by(signal, label)) is None else by.get(v, 0.0)

        return {v: self._increase(value_of(v)) for v in last.totals_by(signal, label)}

    def quantile(self, bucket_signal: str, q: float) -> float | None:
        """A quantile of the observations made during the window, from histogram bucket increases: an estimate,
        interpolated linearly inside the bucket that holds it (as Prometheus' histogram_quantile); quantile_bounds
        gives that bucket."""
        found = self._quantile(bucket_signal, q)
        return None if found is None else found[0]

    def quantile_bounds(self, bucket_signal: str, q: float) -> tuple[float, float] | None:
        """The bounds of the histogram bucket the quantile lies in (the estimate is only known to lie there)."""
        found = self._quantile(bucket_signal, q)
        return None if found is None else found[1]

    def _quantile(self, bucket_signal: str, q: float) -> tuple[float, tuple[float, float]] | None:
        last = self.last
        if last is None or bucket_signal not in last.signals:
            return None
        bounds = sorted({float(lab["le"]) for lab, _ in last.signals[bucket_signal] if "le" in lab})

        def cumulative(bound: float):
            def value_of(snap: Snapshot) -> float | None:
                rows = snap.signals.get(bucket_signal)
                return None if rows is None else sum(v for lab, v in rows if "le" in lab and float(lab["le"]) == bound)

            return value_of

        counts = [(b, self._increase(cumulative(b))) for b in bounds]
        total = counts[-1][1] if counts else 0.0
        if total <= 0:
            return None
        target = q * total
        prev_b, prev_c = 0.0, 0.0
        for b, c in counts:
            if c >= target:
                if math.isinf(b):
                    return prev_b, (prev_b, b)
                return prev_b + (b - prev_b) * ((target - prev_c) / (c - prev_c) if c > prev_c else 1.0), (prev_b, b)
            prev_b, prev_c = b, c
        return prev_b, (prev_b, prev_b)

    def worker_rate(self, worker_id: str, signal: str) -> float | None:
        """Per-second increase of a counter in one worker's own /metrics over the window; None when not seen twice."""
        pts = [(s.t, s.worker_total(worker_id, signal)) for s in self.snaps]
        pts = [(t, v) for t, v in pts if v is not None]
        if len(pts) < 2 or pts[-1][0] <= pts[0][0]:
            return None
        return max(0.0, (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0]))

    def worker_delta(self, worker_id: str, signal: str) -> float | None:
        """Increase of a counter in one worker's own /metrics over the window; None when not seen twice."""
        pts = [v for v in (s.worker_total(worker_id, signal) for s in self.snaps) if v is not None]
        return max(0.0, pts[-1] - pts[0]) if len(pts) >= 2 else None

    def worker_busy_share(self, worker_id: str) -> float | None:
        """Engine busy share (0-1) of one worker over the window, from its own busy_seconds counter."""
        rate = self.worker_rate(worker_id, "busy_seconds")
        return None if rate is None else min(1.0, rate)

    def workers_delta(self, signal: str) -> float:
        """Increase of a counter summed over the workers' own /metrics, first to last snapshot of the window."""
        if len(self.snaps) < 2:
            return 0.0
        first, last = self.snaps[0], self.snaps[-1]
        return sum((last.worker_total(w, signal) or 0.0) - (first.worker_total(w, signal) or 0.0) for w in last.worker_signals)

