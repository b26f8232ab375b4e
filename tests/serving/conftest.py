"""Start `disagg serve` for real (a supervisor, a frontend and worker processes on loopback) and talk to it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class Server:
    def __init__(self, proc: subprocess.Popen, url: str, log_dir: Path, headers: dict | None = None):
        self.proc, self.url, self.log_dir, self.headers = proc, url, log_dir, headers or {}

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(urllib.request.Request(self.url + path, headers=self.headers), timeout=5) as r:
            return json.loads(r.read())

    def metrics(self, url: str | None = None) -> dict[tuple[str, tuple], float]:
        return scrape(url or self.url + "/metrics")

    def metric(self, name: str, **labels) -> float:
        return metric_at(self.url, name, **labels)

    def workers(self) -> list[dict]:
        return self.get("/workers")["workers"]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """Samples of the Prometheus text at `url`, parsed by prometheus_client's parser: (name, sorted labels) -> value."""
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def metric_at(frontend: str, name: str, **labels) -> float:
    """A frontend's sample `name` summed over the series that carry `labels`."""
    want = tuple(sorted(labels.items()))
    return sum(v for (n, lab), v in scrape(frontend + "/metrics").items() if n == name and all(item in lab for item in want))


def start_server(config: Path, tmp: Path, *extra: str, env: dict | None = None) -> Server:
    tmp.mkdir(parents=True, exist_ok=True)
    log_dir = tmp / "logs"
    cmd = [sys.executable, "-m", "disagg", "serve", str(config), "--port", "0", "--log-dir", str(log_dir), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(tmp / "serve.err", "wb"), text=True, env={**os.environ, **(env or {})})
    line = proc.stdout.readline().strip()  # the supervisor prints the URL once everything answers /health
    if not line.startswith("http://"):
        proc.kill()
        raise RuntimeError(f"serve did not start: {(tmp / 'serve.err').read_text()[-3000:]}")
    key = extra[extra.index("--api-key") + 1] if "--api-key" in extra else None
    if "--api-key-file" in extra:
        key = Path(extra[extra.index("--api-key-file") + 1]).read_text().strip()
    server = Server(proc, line, log_dir, {"Authorization": f"Bearer {key}"} if key else None)
    deadline = time.monotonic() + 20
    while not all(w["up"] for w in server.workers()):  # the frontend's own health view
        if time.monotonic() > deadline:
            raise RuntimeError(f"workers not up: {server.workers()}")
        time.sleep(0.05)
    return server


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    """serve(config, *flags) -> Server; everything started in the module is stopped at its end."""
    started = []

    def _serve(config: Path, *extra: str) -> Server:
        s = start_server(config, tmp_path_factory.mktemp("serve"), *extra)
        started.append(s)
        return s

    yield _serve
    for s in started:
        s.stop()


def variant(tmp: Path, name: str, **changes) -> Path:
    """examples/seed-fixed.yaml with VllmWorker keys changed (None removes a key)."""
    import yaml

    cfg = yaml.safe_load((EXAMPLES / "seed-fixed.yaml").read_text())
    for key, value in changes.items():
        section, _, k = key.partition(".")
        if value is None:
            cfg[section].pop(k, None)
        else:
            cfg[section][k] = value
    path = tmp / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


PROMPT_200 = "The decode worker should not prefill this prompt, whose length is two hundred bytes, on its own GPU; " * 2


def prompt(n: int, salt: str = "") -> str:
    base = (salt + PROMPT_200) * (n // len(PROMPT_200) + 1)
    return base[:n]


async def _post(session: aiohttp.ClientSession, url: str, body: dict, timeout: float = 30) -> tuple[int, dict]:
    async with session.post(url, json=body, timeout=aiohttp.ClientTimeout(total=timeout)) as r:
        return r.status, await r.json(content_type=None)


def complete_many(server: Server, bodies: list[dict], timeout: float = 30, path: str = "/v1/completions", headers: dict | None = None) -> list[tuple[int, dict]]:
    """Send the bodies concurrently to /v1/completions; (status, json) for each, in order."""

    async def run():
        async with aiohttp.ClientSession(headers=headers) as session:
            return await asyncio.gather(*(_post(session, server.url + path, b, timeout) for b in bodies))

    return asyncio.run(run())


def complete(server: Server, body: dict, timeout: float = 30, path: str = "/v1/completions", headers: dict | None = None) -> tuple[int, dict]:
    return complete_many(server, [body], timeout, path, headers)[0]


def raw(url: str, body: bytes | None, path: str = "/v1/completions", method: str = "POST", headers: dict | None = None,
        timeout: float = 20) -> tuple[int, str]:
    """One request with exactly these bytes; (status, body text), error statuses included."""
    req = urllib.request.Request(url + path, data=body, headers={"Content-Type": "application/json", **(headers or {})}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_for(pred, seconds: float, what) -> None:
    """Poll `pred` until it holds; fail the test after `seconds`, saying `what` (a string, or a function giving one
    from the state at that moment)."""
    deadline = time.monotonic() + seconds
    while not pred():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what() if callable(what) else what}"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
