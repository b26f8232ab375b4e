"""Chaos under load: two decode and two prefill workers serve a steady stream of requests while each kind of
process (prefill, decode, frontend) is SIGKILLed, and SIGSTOPped for 3 s, one at a time. Checked each time: no
request is lost while a healthy process of that kind remains (the frontend has none: requests it held when it
died may fail, none hangs), no request waits past its client timeout, the frontend's request counters equal what
the clients saw, and a killed process is back in service within 5 s of its restart. Bounded: about a minute."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import pytest

from .conftest import complete, prompt, start_server, variant, wait_for

pytestmark = pytest.mark.slow

CLIENT_TIMEOUT = 20.0


class Load:
    def __init__(self, server, clients: int = 6):
        self.server, self.clients = server, clients
        self.results: list[tuple[int, float, dict]] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(clients)]

    def _run(self, k: int) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            t0 = time.monotonic()
            try:
                code, body = complete(self.server, {"prompt": prompt(200, f"{k}-{n}"), "max_tokens": 16}, timeout=CLIENT_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - a connection the dying frontend reset
                code, body = 0, {"error": type(exc).__name__}
            with self.lock:
                self.results.append((code, time.monotonic() - t0, body))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(CLIENT_TIMEOUT + 5)


def frontend_pid(tmp) -> int:
    """The frontend's current pid, from what `disagg serve` printed (at start, and at each restart)."""
    return int(re.findall(r"(?:ready frontend +pid|frontend restarted as pid) (\d+)", (tmp / "serve.err").read_text())[-1])


def counted(server) -> float:
    return server.metric("disagg_requests_total")


def wait_back(server, role: str, old_pid: int, seconds: float = 20.0) -> None:
    def of_role():
        return [w for w in server.workers() if w["role"] == role]

    def back_up():
        ws = of_role()
        return all(w["up"] for w in ws) and old_pid not in [w["pid"] for w in ws]

    wait_for(back_up, seconds, of_role)
    back = time.monotonic()
    while complete(server, {"prompt": prompt(200, "back"), "max_tokens": 2}, timeout=5)[0] != 200:
        assert time.monotonic() - back < 5.0, "not serving within 5 s of the restart"
        time.sleep(0.05)


@pytest.mark.parametrize("role", ["prefill", "decode"])
def test_killing_or_stopping_a_worker_loses_no_request(tmp_path, role):
    cfg = variant(tmp_path, "two-two.yaml", **{"VllmWorker.ServiceArgs": {"workers": 2}, "PrefillWorker.ServiceArgs": {"workers": 2}})
    s = start_server(cfg, tmp_path / "serve")
    try:
        for action in ("kill", "stop"):
            victim = next(w for w in s.workers() if w["role"] == role)
            before = counted(s)
            with Load(s) as load:
                time.sleep(1.0)
                if action == "kill":
                    os.kill(victim["pid"], signal.SIGKILL)
                    time.sleep(2.0)
                else:
                    os.kill(victim["pid"], signal.SIGSTOP)
                    time.sleep(3.0)
                    os.kill(victim["pid"], signal.SIGCONT)
                time.sleep(1.0)
            codes = [c for c, _, _ in load.results]
            assert codes and set(codes) == {200}, (action, [b for c, _, b in load.results if c != 200][:3])
            assert max(t for _, t, _ in load.results) < CLIENT_TIMEOUT
            assert counted(s) - before == len(codes)  # the counters say what the clients saw
            if action == "kill":
                wait_back(s, role, victim["pid"])
    finally:
        s.stop()


def test_killing_or_stopping_the_frontend_hangs_nothing_and_it_comes_back(tmp_path):
    s = start_server(variant(tmp_path, "two-two.yaml", **{"VllmWorker.ServiceArgs": {"workers": 2}}), tmp_path / "serve")
    try:
        workers = {w["id"]: w["pid"] for w in s.workers()}
        with Load(s) as load:
            time.sleep(1.0)
            pid = frontend_pid(tmp_path / "serve")
            os.kill(pid, signal.SIGSTOP)
            time.sleep(3.0)
            os.kill(pid, signal.SIGCONT)  # stopped, then resumed: what it held completes
            time.sleep(1.0)
        assert set(c for c, _, _ in load.results) == {200} and max(t for _, t, _ in load.results) < CLIENT_TIMEOUT
        with Load(s) as load:
            time.sleep(1.0)
            os.kill(frontend_pid(tmp_path / "serve"), signal.SIGKILL)
            killed = time.monotonic()
            while complete(s, {"prompt": prompt(200, "back"), "max_tokens": 2}, timeout=5)[0] != 200 if _reachable(s) else True:
                assert time.monotonic() - killed < 6.0, "the frontend is not back within 5 s of its restart"
                time.sleep(0.05)
            time.sleep(1.0)
        assert max(t for _, t, _ in load.results) < CLIENT_TIMEOUT  # what it held failed fast, nothing hung
        assert {w["id"]: w["pid"] for w in s.workers()} == workers  # the workers lived through it
    finally:
        s.stop()


def _reachable(s) -> bool:
    try:
        return s.get("/health")["status"] in ("ok", "degraded")
    except Exception:  # noqa: BLE001 - the frontend is restarting
        return False
