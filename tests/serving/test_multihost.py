"""`disagg serve` across hosts: workers registered in a real etcd, frontends following them, KV over NIXL between
network namespaces we create (tests/netns.py). What a user relies on: the same config on every host just works; a
host that dies stops getting requests within the lease's TTL and no request is lost; a KV address peers cannot reach
is a counted failure with local prefill, which the live doctor explains; mistakes (no etcd, another namespace, one
id twice) are said in words, with a metric, never a hang."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import netns  # tests/, on the path as conftest.py's folder
import pytest
from netns import etcd_argv, free_port, wait_etcd

from conftest import ROOT

from .conftest import metric_at, raw, wait_for

pytestmark = pytest.mark.skipif(shutil.which("etcd") is None, reason="needs etcd (Debian: apt-get install etcd-server; .ci/run installs it)")

CONFIG = ROOT / "examples" / "multi-host" / "config.yaml"  # the README's; prompts over 10 uncached tokens prefill remotely
LEASE_TTL = 5  # runtime/discovery.py
PY = sys.executable


def serve_argv(*args: str, config: Path = CONFIG) -> list[str]:
    return [PY, "-m", "disagg", "serve", str(config), "--mock-timing", "zero", *args]


def ready_line(proc: subprocess.Popen, log: Path) -> str:
    line = proc.stdout.readline().decode().strip()
    if not line:
        proc.wait(10)
        raise RuntimeError(f"serve did not start (exit {proc.returncode}): {log.read_text()[-2000:]}")
    return line


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def complete(url: str, words: int, timeout: float = 30) -> tuple[int, dict]:
    status, text = raw(url, json.dumps({"model": "tiny", "prompt": "hello world " * words, "max_tokens": 4}).encode(), timeout=timeout)
    return status, json.loads(text)


def wait_workers(url: str, want: dict[str, int], seconds: float = 30) -> list[dict]:
    """Until the frontend lists exactly `want` (role -> count) workers, all up."""
    deadline = time.monotonic() + seconds
    while True:
        workers = get_json(url + "/workers")["workers"]
        have = {role: sum(1 for w in workers if w["role"] == role and w["up"]) for role in want}
        if have == want and len(workers) == sum(want.values()):
            return workers
        if time.monotonic() > deadline:
            raise AssertionError(f"frontend lists {workers}, expected {want}")
        time.sleep(0.1)


# ---- on loopback: the mistakes ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("etcd")
    port = free_port()
    proc = subprocess.Popen(etcd_argv("127.0.0.1", tmp / "data", port), stdout=subprocess.DEVNULL, stderr=open(tmp / "etcd.log", "wb"))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_etcd(url)
        yield f"etcd://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture()
def started(tmp_path):
    procs = []

    def start(*args: str, env_secret: str, config: Path = CONFIG) -> tuple[subprocess.Popen, str]:
        log = tmp_path / f"serve{len(procs)}.log"
        proc = subprocess.Popen(serve_argv(*args, "--log-dir", str(tmp_path / f"logs{len(procs)}"), config=config), stdout=subprocess.PIPE,
                                stderr=open(log, "wb"), env={**os.environ, "DISAGG_RUN_SECRET": env_secret})
        procs.append(proc)
        return proc, ready_line(proc, log)

    yield start
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()


def run_serve(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(serve_argv(*args), capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})})


def test_mistakes_on_the_command_line_are_said_before_anything_starts(etcd):
    secret = {"DISAGG_RUN_SECRET": secrets.token_hex(32)}
    unreachable = run_serve("--roles", "decode", "--discovery", f"etcd://127.0.0.1:{free_port()}", env=secret)
    assert unreachable.returncode == 2 and "cannot reach etcd at etcd://127.0.0.1:" in unreachable.stderr
    no_secret = run_serve("--roles", "decode", "--discovery", etcd, env={"DISAGG_RUN_SECRET": ""})
    assert no_secret.returncode == 2 and "DISAGG_RUN_SECRET" in no_secret.stderr and "never goes into etcd" in no_secret.stderr
    alone = run_serve("--roles", "decode")
    assert alone.returncode == 2 and "add --discovery" in alone.stderr
    bad_role = run_serve("--roles", "decoder", "--discovery", etcd, env=secret)
    assert bad_role.returncode == 2 and "frontend, decode, prefill" in bad_role.stderr
    for out in (unreachable, no_secret, alone, bad_role):
        assert "Traceback" not in out.stderr


def test_one_worker_id_claimed_twice_is_refused_with_the_holder(etcd, started, tmp_path):
    secret = secrets.token_hex(32)
    ns = f"dup{os.getpid()}"
    started("--roles", "decode", "--discovery", etcd, "--namespace", ns, "--host-id", "same", env_secret=secret)
    second = run_serve("--roles", "decode", "--discovery", etcd, "--namespace", ns, "--host-id", "same", "--log-dir", str(tmp_path / "second"),
                       env={"DISAGG_RUN_SECRET": secret})
    assert second.returncode == 2
    assert f"/{ns}/tiny/decode/decode-same-0 is already registered by 127.0.0.1:" in second.stderr
    assert "give each host its own --host-id" in second.stderr
    assert "Traceback" not in second.stderr


def test_a_frontend_in_another_namespace_says_where_it_looked(etcd, started):
    secret = secrets.token_hex(32)
    started("--roles", "decode,prefill", "--discovery", etcd, "--namespace", "team-a", "--host-id", "w", env_secret=secret)
    _, url = started("--roles", "frontend", "--port", "0", "--discovery", etcd, "--namespace", "team-b", env_secret=secret)
    wait_for(lambda: metric_at(url, "disagg_discovery_up") == 1, 10, "the frontend read etcd")
    status, body = complete(url, 100)
    assert status == 503 and body["error"]["code"] == "no_decode_worker"
    assert "none is registered under /team-b/tiny/<role>/ in etcd" in body["error"]["message"]
    assert "check --namespace" in body["error"]["message"]
    assert metric_at(url, "disagg_workers_registered", role="decode") == 0
    assert metric_at(url, "disagg_discovery_up") == 1


def test_a_worker_of_another_run_is_ignored_and_counted(etcd, started):
    ns = f"other{os.getpid()}"
    started("--roles", "decode,prefill", "--discovery", etcd, "--namespace", ns, "--host-id", "w", env_secret=secrets.token_hex(32))
    _, url = started("--roles", "frontend", "--port", "0", "--discovery", etcd, "--namespace", ns, env_secret=secrets.token_hex(32))
    wait_for(lambda: metric_at(url, "disagg_discovery_errors_total", reason="other_run") >= 2, 10, "both registrations of the other run counted")
    assert metric_at(url, "disagg_discovery_errors_total", reason="other_run") == 2  # the decode and the prefill worker
    assert get_json(url + "/workers")["workers"] == []


def test_a_silent_host_leaves_within_the_lease_ttl_and_two_frontends_see_each_other(etcd, started):
    """SIGSTOP: the processes hold their sockets but answer nothing, as a host that hangs or drops off the network."""
    secret = secrets.token_hex(32)
    ns = f"stop{os.getpid()}"
    workers, _ = started("--roles", "decode,prefill", "--discovery", etcd, "--namespace", ns, "--host-id", "w", env_secret=secret)
    _, url = started("--roles", "frontend", "--port", "0", "--discovery", etcd, "--namespace", ns, env_secret=secret)
    _, url2 = started("--roles", "frontend", "--port", "0", "--discovery", etcd, "--namespace", ns, env_secret=secret)
    wait_workers(url, {"decode": 1, "prefill": 1})
    # each frontend counts the other once its watch has read etcd
    wait_for(lambda: metric_at(url, "disagg_frontends") == 2 and metric_at(url2, "disagg_frontends") == 2, 10, "two frontends of one deployment see each other")
    stopped = [workers.pid] + [int(p) for p in subprocess.run(["pgrep", "-P", str(workers.pid)], capture_output=True, text=True).stdout.split()]
    assert len(stopped) == 3  # the host's supervisor and its two workers
    for pid in stopped:
        os.kill(pid, 19)  # SIGSTOP
    t0 = time.monotonic()
    try:
        while get_json(url + "/workers")["workers"]:
            assert time.monotonic() - t0 < LEASE_TTL + 3, "a silent host's workers stayed listed past the lease TTL"
            time.sleep(0.1)
        gone_after = time.monotonic() - t0
    finally:
        for pid in stopped:
            os.kill(pid, 18)  # SIGCONT
    assert gone_after <= LEASE_TTL + 1
    assert metric_at(url, "disagg_workers_registered", role="prefill") == 0
    wait_workers(url, {"decode": 1, "prefill": 1})  # back: the keep-alive registers again


def test_while_etcd_is_away_the_deployment_keeps_serving_and_says_so(started, tmp_path):
    """The README's promise: a frontend keeps the workers it has while etcd is down, counts it, and follows etcd again
    when it is back (its data dir kept, as a restarted etcd member has)."""
    port = free_port()
    argv = etcd_argv("127.0.0.1", tmp_path / "etcd-data", port)
    etcd = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_etcd(f"http://127.0.0.1:{port}")
        secret, d = secrets.token_hex(32), ["--discovery", f"etcd://127.0.0.1:{port}"]
        started("--roles", "decode,prefill", *d, "--host-id", "w", env_secret=secret)
        _, url = started("--roles", "frontend", "--port", "0", *d, env_secret=secret)
        wait_workers(url, {"decode": 1, "prefill": 1})
        etcd.terminate()
        etcd.wait(10)
        wait_for(lambda: metric_at(url, "disagg_discovery_up") == 0, 10, "the frontend notices etcd going away")
        time.sleep(LEASE_TTL + 1)  # longer than any lease: nothing may be dropped for etcd's absence alone
        remote = metric_at(url, "disagg_requests_total", reason="remote")
        assert complete(url, 150)[0] == 200
        assert metric_at(url, "disagg_requests_total", reason="remote") == remote + 1
        assert metric_at(url, "disagg_discovery_errors_total", reason="unreachable") > 0
        etcd = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: metric_at(url, "disagg_discovery_up") == 1, 20, "the frontend follows etcd again")
        wait_workers(url, {"decode": 1, "prefill": 1})
    finally:
        etcd.terminate()
        etcd.wait(10)


# ---- across network namespaces: the deployment -----------------------------------------------------------------

WHY_NOT = netns.unavailable() if shutil.which("etcd") else "needs etcd"


@pytest.mark.skipif(WHY_NOT is not None, reason=f"network namespaces: {WHY_NOT}")
def test_three_hosts_remote_prefill_failover_and_a_kv_address_on_localhost(tmp_path):
    secret = {"DISAGG_RUN_SECRET": secrets.token_hex(32)}
    kv_bytes_per_token = 8 * 2 * 4 * 64 * 2  # the mock model's shape (runtime/plan.py ModelShape defaults)
    with netns.Hosts(3) as hosts:
        front_host = hosts.address(1)
        hosts.spawn(1, etcd_argv(front_host, tmp_path / "etcd"), tmp_path / "etcd.log")
        wait_etcd(f"http://{front_host}:2379")
        d = ["--discovery", f"etcd://{front_host}:2379"]

        def serve(host: int, *args: str, config: Path = CONFIG) -> subprocess.Popen:
            log = tmp_path / f"h{host}-{time.monotonic_ns()}.log"
            proc = hosts.spawn(host, serve_argv(*args, *d, "--host-id", f"h{host}", "--log-dir", str(log) + ".d", config=config), log, secret,
                               stdout=subprocess.PIPE)
            return proc, ready_line(proc, log)

        _, url = serve(1, "--roles", "frontend", "--host", front_host, "--port", "8000")
        serve(2, "--roles", "decode")
        serve(3, "--roles", "prefill")
        workers = {w["role"]: w for w in wait_workers(url, {"decode": 1, "prefill": 1})}
        assert workers["decode"]["host"] == hosts.address(2) and workers["prefill"]["host"] == hosts.address(3)

        # Long prompts prefill on host 3; their KV crosses the bridge to host 2 and checks out.
        before = metric_at(url, "disagg_requests_total", reason="remote")
        for _ in range(5):
            status, body = complete(url, 150)
            assert status == 200, body
        prompt_tokens = body["usage"]["prompt_tokens"]
        assert metric_at(url, "disagg_requests_total", reason="remote") - before == 5
        assert metric_at(url, "disagg_kv_transfer_bytes_total") == 5 * prompt_tokens * kv_bytes_per_token
        assert metric_at(url, "disagg_kv_transfer_failures_total") == 0  # a checksum mismatch would count here

        # The prefill host dies under load: nothing is lost, and traffic goes local within the lease's TTL.
        results, stop = [], time.monotonic() + 4 + LEASE_TTL

        def client() -> None:
            while time.monotonic() < stop:
                results.append(complete(url, 150)[0])

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(client) for _ in range(4)]
            time.sleep(1.0)
            assert hosts.kill(3) > 0
            killed = time.monotonic()
            while any(w["role"] == "prefill" for w in get_json(url + "/workers")["workers"]):
                assert time.monotonic() - killed < LEASE_TTL + 1, "the dead prefill host stayed listed past the lease TTL + 1 s"
                time.sleep(0.1)
            for f in futures:
                f.result()
        assert results and set(results) == {200}, f"requests lost when the prefill host died: {sorted(set(results))}"
        local = metric_at(url, "disagg_requests_total", reason="no_prefill_workers")
        complete(url, 150)
        assert metric_at(url, "disagg_requests_total", reason="no_prefill_workers") == local + 1

        # The host comes back: remote prefill resumes.
        serve(3, "--roles", "prefill")
        wait_workers(url, {"decode": 1, "prefill": 1})
        remote = metric_at(url, "disagg_requests_total", reason="remote")
        assert complete(url, 150)[0] == 200
        assert metric_at(url, "disagg_requests_total", reason="remote") == remote + 1

        # A prefill host whose KV is advertised on localhost (the side channel's default): the decode host reaches
        # itself, the transfer fails, is counted, and the prompt is prefilled locally; the live doctor says why.
        hosts.kill(3)
        wait_workers(url, {"decode": 1, "prefill": 0})
        local_kv = tmp_path / "kv-on-localhost.yaml"  # PrefillWorker's ServiceArgs close the file
        local_kv.write_text(CONFIG.read_text().rstrip("\n") + "\n    envs:\n      VLLM_NIXL_SIDE_CHANNEL_HOST: 127.0.0.1\n")
        serve(3, "--roles", "prefill", config=local_kv)
        workers = {w["role"]: w for w in wait_workers(url, {"decode": 1, "prefill": 1})}
        assert workers["prefill"]["kv_address"] == "127.0.0.1"
        failed = metric_at(url, "disagg_requests_total", reason="kv_transfer_failed")
        live = subprocess.Popen([PY, "-m", "disagg", "doctor", "--live", url, "--duration", "6", "--interval", "0.5", "--output-format", "json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        for _ in range(3):
            status, body = complete(url, 150)
            assert status == 200, body
        assert metric_at(url, "disagg_requests_total", reason="kv_transfer_failed") == failed + 3
        assert metric_at(url, "disagg_kv_transfer_failures_total") >= 3
        out, err = live.communicate(timeout=60)
        findings = [f for f in json.loads(out)["findings"] if f["code"] == "DG503"]
        assert findings, out + err
        message = findings[0]["message"]
        assert "DG208" in message and "127.0.0.1" in message and hosts.address(3) in message and hosts.address(2) in message
