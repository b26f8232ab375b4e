"""`disagg serve` across hosts, measured: how long a dead prefill host keeps getting requests, and how fast KV moves
between hosts against the same transfer between two local processes.

Hosts are network namespaces joined by a bridge (tests/netns.py): etcd and the frontend on host 1, a decode worker on
host 2, a prefill worker on host 3, each started with `disagg serve --roles ... --discovery etcd://...`. Needs root,
etcd (Debian: etcd-server) and NIXL.

    python bench/bench_multihost.py [--rounds 3] [--requests 20]

Failover: the prefill host's processes are SIGKILLed (their sockets close: the frontend sees it at once), or its link
is taken down (silence, as a host that loses power); the frontend's /workers is polled every 20 ms for the moment it
stops routing to the worker (marked down) and the moment the worker leaves the list (its etcd lease expired; the
target is the lease's TTL + 1 s). KV: long prompts (~2,900 tokens, 23 MiB of mock KV each) prefilled remotely; the
throughput is the frontend's disagg_kv_transfer_bytes_total over disagg_kv_transfer_seconds_sum (the decode worker's
time to read and check the KV), across the bridge (UCX over TCP) and between two local processes of a single-host
`disagg serve` (UCX's default transports, which on one host include shared memory, and UCX over TCP on loopback).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from netns import Hosts, etcd_argv, unavailable, wait_etcd  # noqa: E402

CONFIG = ROOT / "examples" / "multi-host" / "config.yaml"
WORDS = 250  # prompt length in words: ~2,900 mock tokens


def serve_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "disagg", "serve", str(CONFIG), "--mock-timing", "zero", *args]


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def metrics(url: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}


def complete(url: str) -> None:
    body = json.dumps({"model": "tiny", "prompt": "hello world " * WORDS, "max_tokens": 2}).encode()
    urllib.request.urlopen(urllib.request.Request(url + "/v1/completions", body, {"content-type": "application/json"}), timeout=60).read()


def kv_throughput(url: str, requests: int) -> float:
    """GB/s of KV moved, decode side's own timing, over `requests` remote prefills."""
    before = metrics(url)
    for _ in range(requests):
        complete(url)
    after = metrics(url)
    moved = after["disagg_kv_transfer_bytes_total"] - before.get("disagg_kv_transfer_bytes_total", 0)
    seconds = after["disagg_kv_transfer_seconds_sum"] - before.get("disagg_kv_transfer_seconds_sum", 0)
    if moved <= 0:
        raise SystemExit("no KV moved: the prompts did not prefill remotely (is NIXL installed?)")
    return moved / seconds / 1e9


def wait_ready(proc: subprocess.Popen) -> str:
    line = proc.stdout.readline().decode().strip()
    if not line:
        raise SystemExit(f"disagg serve did not start (exit {proc.wait()})")
    return line


def wait_prefill(url: str, present: bool, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while any(w["role"] == "prefill" and w["up"] for w in get(url + "/workers")["workers"]) != present:
        if time.monotonic() > deadline:
            raise SystemExit(f"prefill worker {'never came up' if present else 'never left'}")
        time.sleep(0.05)


def local_throughput(requests: int, work: Path, tcp: bool) -> float:
    env = {**os.environ, **({"UCX_TLS": "tcp"} if tcp else {})}
    proc = subprocess.Popen(serve_argv("--port", "0", "--log-dir", str(work / f"local-{tcp}")), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    try:
        url = wait_ready(proc)
        wait_prefill(url, True)
        complete(url)  # the first read also connects the two UCX workers
        return kv_throughput(url, requests)
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="failovers of each kind (default 3)")
    ap.add_argument("--requests", type=int, default=20, help="long prompts per throughput measurement (default 20)")
    args = ap.parse_args()
    if (why := unavailable()) is not None:
        raise SystemExit(why)
    work = Path(tempfile.mkdtemp(prefix="disagg-bench-multihost-"))
    env = {"DISAGG_RUN_SECRET": secrets.token_hex(32)}
    rows = []
    with Hosts(3) as hosts:
        a1 = hosts.address(1)
        hosts.spawn(1, etcd_argv(a1, work / "etcd"), work / "etcd.log")
        wait_etcd(f"http://{a1}:2379")
        d = ["--discovery", f"etcd://{a1}:2379"]

        def serve(host: int, *roles: str, tries: int = 10) -> str:
            for _ in range(tries):  # a link just brought up takes a moment to forward (the first tries see no route)
                log = work / f"h{host}-{time.monotonic_ns()}.log"
                proc = hosts.spawn(host, serve_argv("--roles", ",".join(roles), *d, "--host-id", f"h{host}", "--log-dir", str(log) + ".d", *(
                    ["--host", a1, "--port", "8000"] if "frontend" in roles else [])), log, env, stdout=subprocess.PIPE)
                line = proc.stdout.readline().decode().strip()
                if line:
                    return line
                proc.wait()
                time.sleep(1.0)
            raise SystemExit(f"disagg serve --roles {','.join(roles)} did not start on host {host}; see {log}")

        url = serve(1, "frontend")
        serve(2, "decode")
        serve(3, "prefill")
        wait_prefill(url, True)
        complete(url)
        across = kv_throughput(url, args.requests)
        for kind in ("kill", "unplug"):
            for _ in range(args.rounds):
                t0 = time.monotonic()
                hosts.kill(3) if kind == "kill" else hosts.unplug(3)
                t0 = (t0 + time.monotonic()) / 2
                down = gone = None
                while gone is None:
                    prefill = [w for w in get(url + "/workers")["workers"] if w["role"] == "prefill"]
                    now = time.monotonic() - t0
                    if down is None and (not prefill or not prefill[0]["up"]):
                        down = now
                    if not prefill:
                        gone = now
                    if now > 30:
                        raise SystemExit("the dead prefill host was still listed after 30 s")
                    time.sleep(0.02)
                rows.append((kind, down, gone))
                if kind == "unplug":
                    hosts.kill(3)
                    hosts.plug(3)
                serve(3, "prefill")
                wait_prefill(url, True)
    local_shm = local_throughput(args.requests, work, tcp=False)
    local_tcp = local_throughput(args.requests, work, tcp=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; lease TTL 5 s")
    print("| prefill host | routed around after (s) | left the list after (s) |")
    print("|---|---|---|")
    for kind in ("kill", "unplug"):
        mine = [r for r in rows if r[0] == kind]
        what = "processes SIGKILLed" if kind == "kill" else "link down (silent)"
        print(f"| {what} | {' / '.join(f'{r[1]:.2f}' for r in mine)} | {' / '.join(f'{r[2]:.2f}' for r in mine)} |")
    print()
    print("| KV transfer, 23 MiB per request | GB/s | across hosts / this |")
    print("|---|---|---|")
    print(f"| across the bridge (UCX over TCP, veth) | {across:.2f} | 1.00 |")
    print(f"| two local processes, UCX defaults | {local_shm:.2f} | {across / local_shm:.2f} |")
    print(f"| two local processes, UCX over TCP on loopback | {local_tcp:.2f} | {across / local_tcp:.2f} |")


if __name__ == "__main__":
    main()
