"""Build snapshots from Prometheus text, as the collector would, for tests of the window and the live rules."""

from __future__ import annotations

from disagg.doctor.live import aliases, promtext
from disagg.doctor.live.utilisation import Reading
from disagg.doctor.live.window import Snapshot, WorkerView, freeze


def snapshot(t: float, metrics: str, workers: list[dict] | None = None, worker_metrics: dict[str, str] | None = None, utilisation: dict[str, float] | None = None,
             frontend_error: str | None = None) -> Snapshot:
    samples = promtext.parse(metrics) if frontend_error is None else []
    views = tuple(WorkerView(w["id"], w["role"], w.get("pid", 100 + i), w.get("up", True), "cpu", f"http://w/{w['id']}", w.get("restarts", 0), w.get("last_error"))
                  for i, w in enumerate(workers or []))
    wsig = {wid: freeze(aliases.signals(promtext.parse(text))) for wid, text in (worker_metrics or {}).items()}
    util = {wid: Reading(pct, "psutil") for wid, pct in (utilisation or {}).items()}
    return Snapshot(t, 0.0, "http://frontend", frontend_error, freeze(aliases.signals(samples)), wsig, views, util, (), tuple(aliases.detect({s[0] for s in samples})))
