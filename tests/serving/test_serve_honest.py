"""`disagg serve` says what it runs: a taken port is an error, the doctor's verdict is printed before the start (and
`--strict` refuses to start on errors), and the mock engine refuses a KV exchange the doctor says vLLM's handshake
refuses, counted, so that the runtime does what the doctor predicts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import EXAMPLES, complete, prompt, start_server, variant

pytestmark = pytest.mark.slow


def serve_cmd(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "disagg", "serve", *args], capture_output=True, text=True, timeout=timeout)


def test_a_port_held_by_another_serve_is_an_error_not_ready(tmp_path):
    first = start_server(EXAMPLES / "seed-fixed.yaml", tmp_path / "first")
    try:
        port = first.url.rsplit(":", 1)[1]
        r = serve_cmd(str(EXAMPLES / "seed-fixed.yaml"), "--port", port, "--log-dir", str(tmp_path / "second"))
        assert r.returncode == 2, r.stdout + r.stderr
        assert f"port {port} on 127.0.0.1 is already in use" in r.stderr
        assert "serving" not in r.stderr and not r.stdout.startswith("http://")
        assert first.get("/health")["status"] == "ok"  # the first server is untouched
        assert first.proc.poll() is None
    finally:
        first.stop()


def test_the_doctor_speaks_before_the_start_and_strict_refuses(tmp_path):
    r = serve_cmd(str(EXAMPLES / "seed-broken.yaml"), "--port", "0", "--strict", "--log-dir", str(tmp_path))
    assert r.returncode == 1, r.stderr
    assert "seed-broken.yaml:15:1: DG101 [error]" in r.stderr and "not starting (--strict)" in r.stderr


def test_serve_prints_the_doctor_errors_and_runs_as_written(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "disagg", "serve", str(EXAMPLES / "seed-broken.yaml"), "--port", "0", "--log-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("http://")
    finally:
        proc.terminate()
        err = proc.communicate(timeout=20)[1]
    assert "DG101 [error]" in err and "starting anyway" in err


def test_mock_engine_refuses_kv_of_another_block_size_as_the_doctor_predicts(tmp_path):
    config = variant(tmp_path, "blocks.yaml", **{"PrefillWorker.block-size": 32, "VllmWorker.block-size": 16})
    doctor = subprocess.run([sys.executable, "-m", "disagg", "doctor", str(config)], capture_output=True, text=True, timeout=30)
    assert "DG203 [error]" in doctor.stdout
    s = start_server(config, tmp_path / "serve")
    try:
        results = [complete(s, {"prompt": prompt(200, str(i)), "max_tokens": 2})[1] for i in range(4)]
        assert all(r["disagg"]["route"] == "local" and r["disagg"]["reason"] == "kv_transfer_failed" for r in results), results
        decode = next(w for w in s.workers() if w["role"] == "decode")
        assert s.metric("disagg_engine_kv_refused_total", reason="block_size", worker_id=decode["id"]) == 4
        assert s.metric("disagg_kv_transfer_failures_total", reason="incompatible") == 4
    finally:
        s.stop()

