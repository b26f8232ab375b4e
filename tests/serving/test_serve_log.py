"""`disagg serve` prints what `vllm serve` prints: a line per request (route, tokens, times) and a periodic stats line;
a clean stop leaves no temporary folder behind (and says so)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from .conftest import EXAMPLES, Server, complete, prompt

pytestmark = pytest.mark.slow


def test_request_and_stats_lines_and_no_temp_folder_after_a_clean_stop(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    err = tmp_path / "serve.err"
    env = {**os.environ, "TMPDIR": str(tmp), "DISAGG_LOG_STATS_INTERVAL": "0.3"}
    proc = subprocess.Popen([sys.executable, "-m", "disagg", "serve", str(EXAMPLES / "seed-fixed.yaml"), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=open(err, "wb"), text=True, env=env)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://"), err.read_text()
        assert [p.name for p in tmp.iterdir() if p.name.startswith("disagg-serve-")]  # the run's folder while it runs
        server = Server(proc, url, tmp)
        code, r = complete(server, {"prompt": prompt(300, "log"), "max_tokens": 4})
        assert code == 200
        deadline = time.monotonic() + 15
        while "stats: " not in err.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    text = err.read_text()
    line = re.search(r"request POST /v1/completions 200 (\S+): route=(\w+) \((\w+)\) decode=decode-0 .*prompt=(\d+) completion=4 tokens, ttft [\d.]+ ms, "
                     r"total [\d.]+ ms", text)
    assert line, text
    assert line.group(1) == r["id"] and line.group(2) == r["disagg"]["route"] and int(line.group(4)) == r["usage"]["prompt_tokens"]
    assert re.search(r"stats: 1 requests in [\d.]+ s; avg prompt throughput [\d.]+ tokens/s, avg generation throughput [\d.]+ tokens/s; running 0; "
                     r"routes: \w+ 1", text), text
    assert proc.returncode == 0
    assert not [p.name for p in tmp.iterdir() if p.name.startswith("disagg-serve-")], text
    assert "stopped; removed " in text
