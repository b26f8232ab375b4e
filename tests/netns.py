"""Hosts we make ourselves: Linux network namespaces joined by a bridge, each with its own address, loopback and
ports (used by tests/serving/test_multihost.py and bench/bench_multihost.py; needs root and `ip`).

    with Hosts(3) as hosts:           # 10.213.N.1 .. 10.213.N.3, the bridge at 10.213.N.254 in this namespace
        p = hosts.spawn(1, [...])      # a process inside host 1
        hosts.kill(3)                  # SIGKILL every process inside host 3 (its sockets close: peers see FIN/RST)
        hosts.unplug(3)                # take host 3's link down (nothing closes: peers see silence, as a dead host)

Namespaces share the kernel, the file system and /dev/shm with this one: only the network is separate. UCX would
therefore move NIXL's data through shared memory between them as if on one machine, so processes started here get
UCX_TLS=tcp: the KV crosses the bridge as it would cross a network.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from disagg.runtime.ports import free_port  # re-exported for the tests and bench that use these hosts


def etcd_argv(address: str, data: Path, port: int = 2379) -> list[str]:
    return ["etcd", "--data-dir", str(data), "--listen-client-urls", f"http://{address}:{port}", "--advertise-client-urls", f"http://{address}:{port}",
            "--listen-peer-urls", f"http://127.0.0.1:{free_port() if address == '127.0.0.1' else 2380}"]


def wait_etcd(url: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/version", timeout=1).read()
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"etcd at {url} did not start")


def unavailable() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces (CI runs as root)"
    if not shutil.which("ip"):
        return "needs iproute2's `ip` to create network namespaces"
    tag = os.getpid() % 10000
    probe, bridge, veth = f"dgprobe{tag}", f"dgpb{tag}", f"dgpv{tag}"
    steps = (["ip", "netns", "add", probe], ["ip", "link", "add", bridge, "type", "bridge"],
             ["ip", "link", "add", f"{veth}i", "type", "veth", "peer", "name", f"{veth}o"], ["ip", "link", "set", f"{veth}i", "netns", probe])
    try:
        for step in steps:  # everything Hosts does, once: a container may allow namespaces but not bridges or veths
            made = subprocess.run(step, capture_output=True, text=True)
            if made.returncode != 0:
                return f"cannot make network namespaces joined by a bridge here ({' '.join(step[:4])}: {made.stderr.strip()})"
        return None
    finally:
        subprocess.run(["ip", "link", "del", f"{veth}o"], capture_output=True)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)


def _ip(*args: str, ns: str | None = None) -> None:
    cmd = ["ip", "netns", "exec", ns, "ip", *args] if ns else ["ip", *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")


class Hosts:
    def __init__(self, count: int, subnet: int | None = None):
        tag = os.getpid() % 10000
        self.count = count
        self.subnet = subnet if subnet is not None else 100 + os.getpid() % 100
        self.bridge = f"dgbr{tag}"
        self.names = [f"dg{tag}h{i}" for i in range(1, count + 1)]
        self.procs: list[subprocess.Popen] = []

    def address(self, host: int) -> str:
        return f"10.213.{self.subnet}.{host}"

    @property
    def gateway(self) -> str:
        return f"10.213.{self.subnet}.254"

    def __enter__(self) -> "Hosts":
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i, ns in enumerate(self.names, 1):
                subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
                inside, outside = f"{ns}i", f"{ns}o"
                _ip("link", "add", inside, "type", "veth", "peer", "name", outside)
                _ip("link", "set", inside, "netns", ns)
                _ip("link", "set", outside, "master", self.bridge)
                _ip("link", "set", outside, "up")
                _ip("link", "set", "lo", "up", ns=ns)
                _ip("addr", "add", f"{self.address(i)}/24", "dev", inside, ns=ns)
                _ip("link", "set", inside, "up", ns=ns)
        except Exception:
            self.__exit__()
            raise
        return self

    def spawn(self, host: int, argv: list[str], log: Path, env: dict | None = None, stdout=None) -> subprocess.Popen:
        full_env = {**os.environ, "UCX_TLS": "tcp", **(env or {})}
        out = open(log, "ab")
        proc = subprocess.Popen(["ip", "netns", "exec", self.names[host - 1], *argv], stdout=stdout or out, stderr=out, env=full_env,
                                stdin=subprocess.DEVNULL)
        out.close()
        self.procs.append(proc)
        return proc

    def pids(self, host: int) -> list[int]:
        done = subprocess.run(["ip", "netns", "pids", self.names[host - 1]], capture_output=True, text=True)
        return [int(p) for p in done.stdout.split()]

    def kill(self, host: int) -> int:
        """SIGKILL every process in the host; returns how many there were."""
        pids = self.pids(host)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while self.pids(host) and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(pids)

    def unplug(self, host: int) -> None:
        _ip("link", "set", f"{self.names[host - 1]}o", "down")

    def plug(self, host: int) -> None:
        _ip("link", "set", f"{self.names[host - 1]}o", "up")

    def __exit__(self, *exc) -> None:
        for i in range(1, self.count + 1):
            try:
                self.kill(i)
            except Exception:
                pass
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for ns in self.names:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
