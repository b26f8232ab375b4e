"""One tick of the live doctor: scrape the frontend and its workers in parallel (or, given a Prometheus server, read
their series from it in one query), read utilisation, freeze a Snapshot."""

from __future__ import annotations

import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

from disagg.schemas.model import is_loopback

from . import aliases, promtext
from .scrape import ScrapeError, fetch, fetch_json
from .series import split_by_worker
from .utilisation import DcgmSource, NotAvailable, NvmlSource, PsutilSource
from .window import Snapshot, WorkerView, freeze


class Collector:
    def __init__(self, frontend_url: str, prometheus_url: str | None = None, nvml_module=None, extra_targets: dict[str, str] | None = None,
                 prometheus_selector: str | None = None):
        from .prometheus import PrometheusSource

        self.url = frontend_url.rstrip("/")
        self.prometheus = PrometheusSource(prometheus_url, prometheus_selector) if prometheus_url else None
        self.t0 = time.monotonic()
        self.nvml = NvmlSource(nvml_module)
        self.psutil = PsutilSource()
        self.dcgm = DcgmSource(prometheus_url)
        self.extra_targets = extra_targets or {}  # worker id -> /metrics URL, for systems without /workers
        self.pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="disagg-scrape")
        self.local = is_loopback(urllib.parse.urlparse(self.url).hostname or "")

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _metrics(self, url: str) -> tuple[dict, list[str], str | None, dict]:
        """(signals, systems, error, worker id -> signals of the per-worker series this page carries)."""
        try:
            samples = promtext.parse(fetch(url).decode("utf-8", "replace"))
        except (ScrapeError, promtext.PromParseError) as exc:
            return {}, [], str(exc), {}
        front, per_worker = split_by_worker(samples)
        systems = aliases.detect({s[0] for s in samples})
        return aliases.signals(front, systems), systems, None, {w: aliases.signals(rows, systems) for w, rows in per_worker.items()}

    def _workers(self) -> tuple[WorkerView, ...]:
        try:
            body = fetch_json(self.url + "/workers")
        except ScrapeError:
            return tuple(WorkerView(wid, "unknown", None, True, "?", url) for wid, url in self.extra_targets.items())
        return tuple(
            WorkerView(w["id"], w["role"], w.get("pid"), bool(w.get("up")), w.get("device", "?"), w.get("metrics_url"), int(w.get("restarts", 0)), w.get("last_error"),
                       w.get("host"), w.get("kv_address"))
            for w in body.get("workers", [])
        )

    def source(self) -> str:
        """Where the metrics come from, in words."""
        return f"Prometheus at {self.prometheus.url}" if self.prometheus else f"{self.url}/metrics and each worker's"

    def _tick_prometheus(self) -> Snapshot:
        from .prometheus import PrometheusError

        error = None
        try:
            signals, worker_signals, systems, workers = self.prometheus.read()
        except PrometheusError as exc:
            signals, worker_signals, systems, workers, error = {}, {}, [], (), str(exc)
        util, notes = self._utilisation(workers)
        return Snapshot(
            t=time.monotonic() - self.t0, wall=time.time(), frontend=self.url, frontend_error=error, signals=freeze(signals),
            worker_signals={w: freeze(sig) for w, sig in worker_signals.items()}, workers=workers, utilisation=util,
            utilisation_notes=tuple(notes), systems=tuple(systems),
        )

    def tick(self) -> Snapshot:
        if self.prometheus is not None:
            return self._tick_prometheus()
        front = self.pool.submit(self._metrics, self.url + "/metrics")
        workers = self._workers()
        futures = {w.worker_id: self.pool.submit(self._metrics, w.metrics_url) for w in workers if w.metrics_url and w.up}
        signals, systems, error, carried = front.result()
        # The reference runtime's frontend carries every worker's engine series (one scrape target); other systems'
        # workers are scraped where they listen.
        worker_signals = {wid: freeze(sig) for wid, sig in carried.items()}
        for wid, fut in futures.items():
            sig, sys_, _, _ = fut.result()
            worker_signals[wid] = freeze(sig)
            systems = systems + [s for s in sys_ if s not in systems]
        util, notes = self._utilisation(workers)
        return Snapshot(
            t=time.monotonic() - self.t0, wall=time.time(), frontend=self.url, frontend_error=error, signals=freeze(signals),
            worker_signals=worker_signals, workers=workers, utilisation=util, utilisation_notes=tuple(notes), systems=tuple(systems),
        )

    def _utilisation(self, workers) -> tuple[dict, list[str]]:
        # A PID means something only on its own host: workers another host runs are read through NVML/DCGM or not at all.
        pids = {w.worker_id: w.pid for w in workers if w.pid and w.up and (w.host is None or is_loopback(w.host))}
        notes = []
        nv = self.nvml.read(pids)
        if isinstance(nv, dict) and nv:
            return nv, notes
        if isinstance(nv, NotAvailable):
            notes.append(f"NVML: {nv.reason}")
        if self.dcgm.url:
            dc = self.dcgm.read({w.worker_id: w.worker_id for w in workers})
            if isinstance(dc, dict) and dc:
                return dc, notes
            if isinstance(dc, NotAvailable):
                notes.append(f"DCGM: {dc.reason}")
        if not self.local:
            notes.append("psutil: the frontend is not on this host, so worker PIDs cannot be read here")
            return {}, notes
        ps = self.psutil.read(pids)
        if isinstance(ps, NotAvailable):
            notes.append(f"psutil: {ps.reason}")
            return {}, notes
        notes.append("showing CPU% per worker process (psutil)")
        return ps, notes
