"""Utilisation per worker from three sources behind one interface; each answers "not available" with a reason.

- NVML (`nvidia-ml-py`, import name `pynvml`): device utilisation and memory, and per-process utilisation from
  the running-process list, mapped to workers by the PIDs the runtime publishes. "GPU utilisation" is the share of
  time any kernel ran, not SM activity; on MIG it is not reported.
- psutil: CPU% of each worker PID, which is what a CPU engine (and a CPU-only machine) shows.
- DCGM exporter series through a Prometheus server (`DCGM_FI_DEV_GPU_UTIL`, `DCGM_FI_PROF_GR_ENGINE_ACTIVE`),
  by `pod`/`Hostname`/`gpu`, for clusters where the doctor does not run beside the GPUs.
"""

from __future__ import annotations

import atexit
import json
import time
import urllib.parse
from dataclasses import dataclass

from .scrape import ScrapeError, fetch


@dataclass(frozen=True)
class Reading:
    percent: float  # 0-100 over the last interval
    source: str  # nvml | psutil | dcgm | engine
    memory_used: int | None = None  # bytes
    detail: str = ""


@dataclass(frozen=True)
class NotAvailable:
    source: str
    reason: str


class NvmlSource:
    """Per-process GPU utilisation through NVML; initialised lazily, shut down at exit.

    `nvmlDeviceGetProcessUtilization(handle, lastSeenTimeStamp)` returns the samples newer than the timestamp (CPU
    epoch microseconds) and raises NVML_ERROR_NOT_FOUND when there is none. Each GPU is asked for its own last
    `WINDOW_US` of samples, and a process's newest sample wins: one cursor shared by all GPUs (what this class kept
    until 2026-12) hid every sample of a GPU whose newest sample was older than another GPU's, so a busy prefill GPU
    read 0%. The one-second window is nvitop's (XuehaiPan/nvitop nvitop/api/device.py, `processes()`: "the timestamp
    1 second ago to ensure the record buffer is not empty")."""

    name = "nvml"
    WINDOW_US = 1_000_000

    def __init__(self, module=None):
        self._nvml = module  # tests inject a fake module; None imports the real `pynvml` (nvidia-ml-py)
        self._ready: bool | None = None
        self._why = ""
        self.last_seen: dict[int, int] = {}  # GPU index -> newest sample timestamp read from it (microseconds)

    def available(self) -> NotAvailable | None:
        if self._ready is None:
            try:
                if self._nvml is None:
                    import pynvml  # the nvidia-ml-py distribution

                    self._nvml = pynvml
                self._nvml.nvmlInit()
                atexit.register(self._shutdown)
                self._ready = True
            except ImportError:
                self._ready, self._why = False, "nvidia-ml-py is not installed (pip install nvidia-ml-py)"
            except Exception as exc:  # NVMLError: no driver, no GPU
                self._ready, self._why = False, f"no NVIDIA driver or GPU here ({type(exc).__name__}: {exc})"
        return None if self._ready else NotAvailable(self.name, self._why)

    def _shutdown(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except Exception:
            pass

    def _process_util(self, index: int, handle) -> dict[int, int]:
        """pid -> SM utilisation of its newest sample on this GPU within the window; a process with no sample in it
        ran no kernel there (NVML's NOT_FOUND). MIG devices do not report per-process samples (NOT_SUPPORTED)."""
        nv = self._nvml
        quiet = tuple(e for e in (getattr(nv, "NVMLError_NotFound", None), getattr(nv, "NVMLError_NotSupported", None)) if e is not None)
        cursor = max(0, time.time_ns() // 1000 - self.WINDOW_US)
        try:
            samples = nv.nvmlDeviceGetProcessUtilization(handle, cursor)
        except quiet:
            return {}
        newest: dict[int, tuple[int, int]] = {}
        for s in samples:
            if s.pid not in newest or s.timeStamp >= newest[s.pid][0]:
                newest[s.pid] = (s.timeStamp, s.smUtil)
        if newest:
            self.last_seen[index] = max(self.last_seen.get(index, 0), max(t for t, _ in newest.values()))
        return {pid: util for pid, (_, util) in newest.items()}

    def read(self, pids: dict[str, int]) -> dict[str, Reading] | NotAvailable:
        if (na := self.available()) is not None:
            return na
        nv = self._nvml
        out: dict[str, Reading] = {}
        by_pid = {pid: wid for wid, pid in pids.items()}
        try:
            for i in range(nv.nvmlDeviceGetCount()):
                h = nv.nvmlDeviceGetHandleByIndex(i)
                device_util = nv.nvmlDeviceGetUtilizationRates(h).gpu
                procs = {p.pid: p for p in nv.nvmlDeviceGetComputeRunningProcesses(h)}
                util = self._process_util(i, h)
                for pid, proc in procs.items():
                    if pid in by_pid:
                        mem = getattr(proc, "usedGpuMemory", None)
                        out[by_pid[pid]] = Reading(float(util.get(pid, 0)), self.name, mem, f"gpu {i}, device {device_util}% busy")
        except Exception as exc:
            return NotAvailable(self.name, f"NVML query failed: {exc}")
        if not out and pids:
            return NotAvailable(self.name, "no worker PID is among NVML's GPU processes (CPU engine, or another PID namespace)")
        return out


class PsutilSource:
    name = "psutil"

    def __init__(self):
        self._procs: dict[int, object] = {}

    def read(self, pids: dict[str, int]) -> dict[str, Reading] | NotAvailable:
        try:
            import psutil
        except ImportError:
            return NotAvailable(self.name, "psutil is not installed (pip install psutil)")
        out = {}
        for wid, pid in pids.items():
            proc = self._procs.get(pid)
            try:
                if proc is None:
                    proc = psutil.Process(pid)
                    proc.cpu_percent(None)  # the first call only primes the counter
                    self._procs[pid] = proc
                    continue
                out[wid] = Reading(float(proc.cpu_percent(None)), self.name, proc.memory_info().rss, "CPU% of the worker process")
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess) as exc:
                self._procs.pop(pid, None)
                out[wid] = Reading(0.0, self.name, None, f"process {pid}: {type(exc).__name__}")
        return out


class DcgmSource:
    """DCGM exporter series from a Prometheus server's HTTP API, keyed by pod (or Hostname/gpu)."""

    name = "dcgm"
    QUERIES = ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_DEV_GPU_UTIL")

    def __init__(self, prometheus_url: str | None):
        self.url = prometheus_url.rstrip("/") if prometheus_url else None

    def read_devices(self) -> list[tuple[dict[str, str], float, str]] | NotAvailable:
        if not self.url:
            return NotAvailable(self.name, "no --prometheus URL given")
        for metric in self.QUERIES:
            try:
                body = json.loads(fetch(f"{self.url}/api/v1/query?query={urllib.parse.quote(metric)}"))
            except (ScrapeError, json.JSONDecodeError) as exc:
                return NotAvailable(self.name, f"Prometheus query failed: {exc}")
            rows = body.get("data", {}).get("result", [])
            if rows:
                scale = 100.0 if metric == "DCGM_FI_PROF_GR_ENGINE_ACTIVE" else 1.0  # ratio vs percent
                return [(r.get("metric", {}), float(r["value"][1]) * scale, metric) for r in rows]
        return NotAvailable(self.name, "no DCGM exporter series (DCGM_FI_DEV_GPU_UTIL) in Prometheus")

    def read(self, pods: dict[str, str]) -> dict[str, Reading] | NotAvailable:
        """`pods`: worker id -> pod (or host) name; a worker's reading is the busiest GPU of its pod."""
        devices = self.read_devices()
        if isinstance(devices, NotAvailable):
            return devices
        out = {}
        for wid, pod in pods.items():
            mine = [(v, m, lab) for lab, v, m in devices if pod in (lab.get("pod"), lab.get("Hostname"), lab.get("exported_pod"))]
            if mine:
                v, metric, lab = max(mine, key=lambda x: x[0])
                out[wid] = Reading(v, self.name, None, f"{metric} gpu {lab.get('gpu', '?')}")
        return out


def engine_utilisation(busy_now: dict[str, float], busy_before: dict[str, float], seconds: float) -> dict[str, Reading]:
    """Busy share from each engine's own `busy_seconds` counter (the mock engine's modelled GPU time)."""
    if seconds <= 0:
        return {}
    return {wid: Reading(min(100.0, max(0.0, (busy_now[wid] - busy_before.get(wid, busy_now[wid])) / seconds * 100)), "engine", None, "engine busy time")
            for wid in busy_now}


def now() -> float:
    return time.monotonic()
