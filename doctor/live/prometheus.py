"""Metrics through a Prometheus server's HTTP API (`--prometheus URL`): the cluster path, where the doctor does not
reach the frontend and its workers, but the Prometheus that scrapes them.

One instant query per tick fetches every series of the systems we read (`disagg_*`, `vllm:*`, `dynamo_*`,
`sglang:*`, llm-d's `llm_d_*`), narrowed by `--prometheus-selector` (e.g. `job="disagg",namespace="prod"`) where one Prometheus
scrapes several deployments. The reference runtime's engine series (`disagg_engine_*`, labelled `worker_id`) become
each worker's own signals, as a direct scrape of that worker would; workers are read from `disagg_worker_info` and
`disagg_worker_up`.
"""

from __future__ import annotations

import json
import re
import urllib.parse

from . import aliases
from .scrape import ScrapeError, fetch
from .series import split_by_worker
from .window import WorkerView

NAMES = "|".join(re.escape(prefix) + ".*" for prefix in aliases.PREFIXES.values())  # every system an alias table reads
_SELECTOR = re.compile(r'\s*[A-Za-z_][A-Za-z0-9_]*\s*(=|!=|=~|!~)\s*"(?:[^"\\]|\\.)*"\s*(,\s*[A-Za-z_][A-Za-z0-9_]*\s*(=|!=|=~|!~)\s*"(?:[^"\\]|\\.)*"\s*)*,?\s*')
_DROP = {"job", "instance"}  # scrape bookkeeping, not the series' identity here


class PrometheusError(Exception):
    pass


def check_selector(selector: str | None) -> str:
    """The label matchers inside `{...}`, checked so that a typo is a usage error, not an empty answer."""
    if not selector:
        return ""
    inner = selector.strip()
    if inner.startswith("{") and inner.endswith("}"):
        inner = inner[1:-1]
    if not _SELECTOR.fullmatch(inner):
        raise PrometheusError(f'--prometheus-selector {selector!r} is not a list of label matchers such as job="disagg",namespace="prod"')
    return inner.strip().rstrip(",")


class PrometheusSource:
    def __init__(self, url: str, selector: str | None = None):
        self.url = url.rstrip("/")
        self.selector = check_selector(selector)

    def query(self) -> list[tuple[str, tuple[tuple[str, str], ...], float]]:
        matchers = f'__name__=~"{NAMES}"' + (f",{self.selector}" if self.selector else "")
        url = f"{self.url}/api/v1/query?query={urllib.parse.quote('{' + matchers + '}')}"
        try:
            body = json.loads(fetch(url, timeout=5.0))
        except (ScrapeError, json.JSONDecodeError) as exc:
            raise PrometheusError(f"Prometheus query failed: {exc}") from None
        if body.get("status") != "success":
            raise PrometheusError(f"Prometheus refused the query: {body.get('error', body)}")
        samples = []
        for row in body.get("data", {}).get("result", []):
            labels = dict(row.get("metric", {}))
            name = labels.pop("__name__", "")
            try:
                value = float(row["value"][1])
            except (KeyError, IndexError, ValueError):
                continue
            samples.append((name, tuple(sorted((k, v) for k, v in labels.items() if k not in _DROP)), value))
        return samples

    def read(self) -> tuple[dict, dict[str, dict], list[str], tuple[WorkerView, ...]]:
        """(frontend signals, worker id -> its engine's signals, systems, workers) from one query."""
        samples = self.query()
        front, per_worker = split_by_worker(samples)
        systems = aliases.detect({s[0] for s in samples})
        signals = aliases.signals(front, systems)
        worker_signals = {wid: aliases.signals(rows, systems) for wid, rows in per_worker.items()}
        return signals, worker_signals, systems, workers_from(signals)


def workers_from(signals: dict) -> tuple[WorkerView, ...]:
    """Workers as the reference runtime's frontend reports them in its metrics (disagg_worker_info, _up)."""
    up = {lab.get("worker_id"): v for lab, v in signals.get("worker_up", ())}
    out = []
    for lab, _ in signals.get("worker_info", ()):
        wid = lab.get("worker_id")
        pid = lab.get("pid")
        out.append(WorkerView(wid, lab.get("role", "unknown"), int(pid) if pid and pid.isdigit() else None, bool(up.get(wid, 1.0)), lab.get("device", "?"), None))
    return tuple(sorted(out, key=lambda w: w.worker_id))
