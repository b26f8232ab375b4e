"""What `disagg top` shows, computed off the UI thread into immutable values.

The polling thread owns the sliding window and the diagnosis; after each snapshot it builds one `TopView` (tuples and
strings only) and hands it to the UI, which draws it and never reads the window. (The UI thread used to iterate the
window's deque while the polling thread appended to it: `RuntimeError: deque mutated during iteration`.)

The worker table fits any width: each column has a priority, and columns are dropped from the least important up
until the rest fit, then cells are cut with an ellipsis, so a worker is always one line (as htop and nvitop do).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from ..live.window import Snapshot, Window

# (key, header, width, priority: 1 is kept longest)
COLUMNS = (
    ("worker", "worker", 14, 1), ("role", "role", 8, 2), ("host", "host", 16, 8), ("pid", "pid", 8, 9), ("device", "device", 7, 11),
    ("util", "util %", 7, 4), ("source", "source", 7, 10), ("busy", "busy %", 7, 6), ("rps", "req/s", 7, 5), ("tps", "pf tok/s", 9, 7),
    ("up", "state", 11, 3),
)
SORTS = ("worker", "role", "util", "rps")
FILTERS = ("all", "prefill", "decode", "down")


@dataclass(frozen=True)
class WorkerRow:
    worker_id: str
    role: str
    host: str
    pid: str
    device: str
    util: str
    source: str
    busy: str
    rps: str
    tps: str
    up: str  # "up", or "DOWN" with how long ago it was last seen up
    is_up: bool
    util_value: float
    rps_value: float

    def cell(self, key: str) -> str:
        return self.worker_id if key == "worker" else getattr(self, key)


@dataclass(frozen=True)
class Replay:
    position: int  # snapshots played
    count: int  # snapshots in the recording
    paused: bool
    speed: float
    ended: bool


@dataclass(frozen=True)
class TopView:
    t: float
    frontend: str
    frontend_error: str | None
    systems: tuple[str, ...]
    note: str
    workers: tuple[WorkerRow, ...]
    reasons: tuple[tuple[str, float], ...]  # routing reason -> requests in the window, most first
    total: float
    remote: float
    span: float
    queue: float
    kv_rate: float  # bytes/s
    failures: float
    history: Mapping[str, tuple[float, ...]]  # sparkline points: remote prefills/s, queue, KV MB/s
    held: tuple  # the live findings holding now, most certain first
    replay: Replay | None = None


def build_view(window: Window, snap: Snapshot, held, history: Mapping[str, tuple[float, ...]], replay: Replay | None = None,
               wall: float | None = None) -> TopView:
    """Everything the screen needs from the window, at one instant (runs in the polling thread)."""
    reasons = window.by_label("requests", "reason")
    total = sum(reasons.values())
    requests = window.by_label("worker_requests", "worker_id")  # one pass over the window for every worker
    now = time.time() if wall is None else wall
    rows = []
    for wv in snap.workers:
        reading = snap.utilisation.get(wv.worker_id)
        busy = window.worker_busy_share(wv.worker_id)
        rps = requests.get(wv.worker_id, 0.0) / window.span if window.span > 0 else 0.0
        tps = window.worker_rate(wv.worker_id, "prompt_tokens_computed") or 0.0
        if wv.up:
            state = "up"
        elif wv.last_seen is not None:
            state = f"DOWN {_ago(now - wv.last_seen)}"
        else:
            state = "DOWN"
        rows.append(WorkerRow(
            wv.worker_id, wv.role, wv.host or "-", str(wv.pid or "-"), wv.device,
            f"{reading.percent:5.1f}" if reading is not None else "  n/a", reading.source if reading is not None else "-",
            f"{busy * 100:5.1f}" if busy is not None else "  n/a", f"{rps:6.1f}", f"{tps:8.0f}", state, wv.up,
            reading.percent if reading is not None else -1.0, rps))
    return TopView(
        t=snap.t, frontend=snap.frontend, frontend_error=snap.frontend_error, systems=tuple(snap.systems),
        note="; ".join(snap.utilisation_notes[-1:]), workers=tuple(rows),
        reasons=tuple(sorted(((k, v) for k, v in reasons.items() if v > 0), key=lambda kv: -kv[1])), total=total,
        remote=reasons.get("remote", 0.0), span=window.span, queue=snap.total("queue_size") or 0.0, kv_rate=window.rate("kv_bytes"),
        failures=sum(window.by_label("kv_failures", "reason").values()), history=MappingProxyType(dict(history)), held=tuple(held), replay=replay,
    )


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{seconds:.0f}s ago" if seconds < 100 else f"{seconds / 60:.0f}m ago" if seconds < 6000 else f"{seconds / 3600:.0f}h ago"


def fit_columns(width: int) -> tuple[tuple[str, str, int], ...]:
    """The columns that fit in `width` characters, in display order: the least important go first."""
    chosen = list(COLUMNS)
    while len(chosen) > 1 and sum(c[2] for c in chosen) > width:
        chosen.remove(max(chosen, key=lambda c: c[3]))
    return tuple((key, header, width_) for key, header, width_, _ in chosen)


def cut(text: str, width: int) -> str:
    """`text` in at most `width - 1` characters (one space separates columns), cut with an ellipsis."""
    room = max(1, width - 1)
    return text if len(text) <= room else text[: room - 1] + "…"


def arrange(rows: tuple[WorkerRow, ...], sort: str, filter_: str) -> list[WorkerRow]:
    """Rows filtered (all, a role, or the workers down) and sorted (busiest first for util and req/s)."""
    if filter_ == "down":
        rows = tuple(r for r in rows if not r.is_up)
    elif filter_ != "all":
        rows = tuple(r for r in rows if r.role == filter_)
    if sort == "util":
        return sorted(rows, key=lambda r: (-r.util_value, r.worker_id))
    if sort == "rps":
        return sorted(rows, key=lambda r: (-r.rps_value, r.worker_id))
    if sort == "role":
        return sorted(rows, key=lambda r: (r.role, r.worker_id))
    return sorted(rows, key=lambda r: r.worker_id)


def table_lines(rows: list[WorkerRow], width: int) -> tuple[str, list[tuple[str, bool]]]:
    """(header, [(line, up)]) for the workers table, every line at most `width` characters."""
    cols = fit_columns(width)
    header = "".join(f"{cut(h, w):<{w}}" for _, h, w in cols).rstrip()
    return header, [("".join(f"{cut(r.cell(k), w):<{w}}" for k, _, w in cols).rstrip(), r.is_up) for r in rows]
