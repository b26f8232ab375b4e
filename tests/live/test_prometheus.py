"""The cluster path on a real Prometheus (Debian's `prometheus` package; `.ci/run` installs it): Prometheus scrapes a
running `disagg serve`, and `disagg doctor --live --prometheus URL` diagnoses the seed case through Prometheus's HTTP
API alone (the frontend URL it is given does not answer)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
from serving.conftest import EXAMPLES, start_server

from disagg.runtime.ports import free_port

from .test_live_e2e import Load

pytestmark = pytest.mark.slow

PROMETHEUS = shutil.which("prometheus")


def query(prom: str, expr: str) -> list:
    with urllib.request.urlopen(f"{prom}/api/v1/query?query={urllib.parse.quote(expr)}", timeout=5) as r:
        return json.loads(r.read())["data"]["result"]


@pytest.fixture
def prometheus_for(tmp_path):
    if PROMETHEUS is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's prometheus package (.ci/run does)")
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    procs = []

    def start(targets: list[str]) -> str:
        port = free_port()
        cfg = tmp_path / "prometheus.yml"
        cfg.write_text(json.dumps({  # YAML is a superset of JSON
            "global": {"scrape_interval": "1s", "scrape_timeout": "900ms"},
            "scrape_configs": [{"job_name": "disagg", "static_configs": [{"targets": targets}]}],
        }))
        proc = subprocess.Popen([PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "wb"))
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if query(url, 'up{job="disagg"} == 1') and len(query(url, 'up{job="disagg"} == 1')) == len(targets):
                    return url
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not scrape its targets: {(tmp_path / 'prometheus.log').read_text()[-2000:]}")
            time.sleep(0.2)

    yield start
    for p in procs:
        p.terminate()
        p.wait(10)


def test_seed_case_diagnosed_through_prometheus_alone(tmp_path, prometheus_for):
    server = start_server(EXAMPLES / "seed-broken.yaml", tmp_path / "serve")
    try:
        targets = [urllib.parse.urlparse(server.url).netloc]  # the frontend carries its workers' engine series
        prom = prometheus_for(targets)
        with Load(server.url, concurrency=2, max_seconds=20, pause=0.2):
            r = subprocess.run([sys.executable, "-m", "disagg", "doctor", str(EXAMPLES / "seed-broken.yaml"), "--live", "http://127.0.0.1:9",
                                "--prometheus", prom, "--prometheus-selector", 'job="disagg"', "--duration", "8", "--output-format", "json"],
                               capture_output=True, text=True, timeout=60)
        assert r.returncode == 1, r.stdout + r.stderr
        out = json.loads(r.stdout)
        assert out["metrics_source"] == f"Prometheus at {prom}"
        [f] = [f for f in out["findings"] if f["code"] == "DG501" and "first_seen_s" in f]
        assert f["cause"] == "remote_prefill_disabled" and f["evidence"]["requests"] >= 5
        assert f["evidence"]["prefill_workers"] == 1  # workers read from disagg_worker_info through Prometheus
    finally:
        server.stop()


def test_a_selector_that_matches_nothing_is_a_clear_error(tmp_path, prometheus_for):
    server = start_server(EXAMPLES / "seed-fixed.yaml", tmp_path / "serve")
    try:
        prom = prometheus_for([urllib.parse.urlparse(server.url).netloc])
        r = subprocess.run([sys.executable, "-m", "disagg", "doctor", "--live", server.url, "--prometheus", prom, "--prometheus-selector", 'job="nope"', "--duration", "1"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and 'holds no disagg, vLLM, Dynamo or SGLang series matching job="nope"' in r.stderr, r.stderr
        bad = subprocess.run([sys.executable, "-m", "disagg", "doctor", "--live", server.url, "--prometheus", prom, "--prometheus-selector", "job=disagg"],
                             capture_output=True, text=True, timeout=30)
        assert bad.returncode == 2 and "is not a list of label matchers" in bad.stderr, bad.stderr
    finally:
        server.stop()
