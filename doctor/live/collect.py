"""One tick of the live doctor: scrape the frontend and its workers in parallel (or, given a Prometheus server, read
their series from it in one query), read utilisation, freeze a Snapshot."""

from __future__ import annotations

import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

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
        self.listed: tuple[WorkerView, ...] = ()  # the last successful /workers listing
        self.listed_at: dict[str, float] = {}  # worker id -> wall time it was last listed up

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _metrics(self, url: str) -> tuple[dict, list[str], str | None, dict]:
        """(signals, systems, error, worker id -> signals of the per-worker series this page carries)."""
        try:
            samples = promtext.parse(fetch(url).decode("utf-8", "replace"))
        except (ScrapeError, promtext.PromParseError) as exc:
            return {}, [], str(exc) if url in str(exc) else f"{url}: {exc}", {}
        front, per_worker = split_by_worker(samples)
        systems = aliases.detect({s[0] for s in samples})
        return aliases.signals(front, systems), systems, None, {w: aliases.signals(rows, systems) for w, rows in per_worker.items()}

    def _workers(self) -> tuple[WorkerView, ...]:
        """The workers the frontend lists. When the listing fails after it once worked, the workers last listed stay,
        marked down with the failure and when each was last seen up: a deployment that died is not an empty one."""
        try:
            body = fetch_json(self.url + "/workers")
        except ScrapeError as exc:
            if self.listed:
                return tuple(replace(w, up=False, last_error=f"not listed: {exc}", last_seen=w.last_seen if w.last_seen is not None else self.listed_at.get(w.worker_id))
                             for w in self.listed)
            return tuple(WorkerView(wid, "unknown", None, True, "?", url) for wid, url in self.extra_targets.items())
        now = time.time()
        views = []
        for w in body.get("workers", []) if isinstance(body, dict) else []:
            try:
                up = bool(w.get("up"))
                if up:
                    self.listed_at[str(w["id"])] = now
                views.append(WorkerView(str(w["id"]), str(w["role"]), w.get("pid"), up, w.get("device", "?"), w.get("metrics_url"), int(w.get("restarts", 0)),
                                        w.get("last_error"), w.get("host"), w.get("kv_address"), None if up else self.listed_at.get(str(w["id"]))))
            except (KeyError, TypeError, ValueError, AttributeError):
                continue  # a row that is not a worker (another system's /workers): not ours to read
        self.listed = tuple(views)
        return self.listed

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
