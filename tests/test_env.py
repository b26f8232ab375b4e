"""`disagg doctor --env`: the host preflight reads sysfs and procfs as a real host lays them out (a tree built here),
parses UCX's own protocol tables, and on this machine measures a real NIXL transfer between two processes and says
which transport UCX chose for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from disagg.doctor.host import collect, parse_proto_info


def _write(root: Path, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text + "\n")


@pytest.fixture
def host_tree(tmp_path):
    """A two-socket GPU host: eth0 and an InfiniBand port on node 1, a GPU on node 0, IMEX channels, a veth."""
    r = tmp_path
    _write(r, "sys/class/net/eth0/type", "1")
    _write(r, "sys/class/net/eth0/operstate", "up")
    _write(r, "sys/class/net/eth0/device/numa_node", "1")
    _write(r, "sys/class/net/veth1/type", "1")
    _write(r, "sys/class/net/veth1/operstate", "up")
    _write(r, "sys/class/net/lo/type", "772")
    _write(r, "sys/class/infiniband/mlx5_0/device/numa_node", "1")
    _write(r, "sys/class/infiniband/mlx5_0/ports/1/link_layer", "InfiniBand")
    _write(r, "sys/class/infiniband/mlx5_0/ports/1/state", "4: ACTIVE")
    _write(r, "sys/class/infiniband/mlx5_0/ports/1/gids/0", "fe80:0000:0000:0000:0c42:a103:0078:2c5a")
    _write(r, "sys/class/infiniband/mlx5_0/ports/1/gids/1", "0000:0000:0000:0000:0000:0000:0000:0000")
    _write(r, "proc/driver/nvidia/gpus/0000:1B:00.0/information", "Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   \t 180")
    _write(r, "sys/bus/pci/devices/0000:1b:00.0/numa_node", "0")
    _write(r, "proc/driver/nvidia/version", "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.95.05  Thu Sep 25 2025")
    _write(r, "dev/nvidia-caps-imex-channels/channel0", "")
    return r


def test_facts_from_sysfs_and_procfs(host_tree):
    f = collect(root=host_tree, env={"UCX_TLS": "rc,tcp", "PATH": "/bin"}, probe_nixl=False)
    nics = {n.name: n for n in f.nics}
    assert (nics["eth0"].link, nics["eth0"].state, nics["eth0"].numa_node, nics["eth0"].virtual) == ("ether", "up", 1, False)
    assert nics["veth1"].virtual and nics["lo"].link == "loopback"
    [port] = f.rdma
    assert (port.device, port.port, port.link_layer, port.gids, port.numa_node) == ("mlx5_0", 1, "InfiniBand", 1, 1)
    assert f.active_rdma() == [port] and [n.name for n in f.physical_nics()] == ["eth0"]
    [gpu] = f.gpus
    assert (gpu.name, gpu.pci, gpu.numa_node) == ("NVIDIA H100 80GB HBM3", "0000:1B:00.0", 0)
    assert f.driver["driver"] == "580.95.05" and f.imex == {"present": True, "channels": ["channel0"], "nodes_configured": 0}
    assert f.ucx["settings"] == {"UCX_TLS": "rc,tcp"}


def test_the_open_kernel_module_version_line(tmp_path):
    # as an H200 host with the open kernel module prints it (read on the lent GPU machine)
    _write(tmp_path, "proc/driver/nvidia/gpus/0000:00:06.0/information", "Model: \t\t NVIDIA H200")
    _write(tmp_path, "proc/driver/nvidia/version", "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  (nixbld@)")
    assert collect(root=tmp_path, env={}, probe_nixl=False).driver["driver"] == "580.159.04"


def test_a_cpu_host_says_what_it_could_not_probe(tmp_path):
    f = collect(root=tmp_path, env={}, probe_nixl=False)
    assert not f.gpus and not f.rdma
    assert any("no NVIDIA GPU" in n for n in f.notes) and any("no RDMA device" in n for n in f.notes)


UCX_TABLE = """\
[1796407437.175566] [vm:30364:0]   +--------+-------------+-------------------------------------------+
[1796407437.175566] [vm:30364:0]   | disagg-probe-initiator inter-node cfg#2                          |
[1796407437.175566] [vm:30364:0]   | remote memory read by ucp_get*(multi) into host memory from host |
[1796407437.175566] [vm:30364:0]   +--------+-------------+-------------------------------------------+
[1796407437.175566] [vm:30364:0]   | Range  | Description |                  Config                   |
[1796407437.175566] [vm:30364:0]   +--------+-------------+-------------------------------------------+
[1796407437.175566] [vm:30364:0]   | 0..8k  | bcopy       | rc_mlx5/mlx5_0:1                          |
[1796407437.175566] [vm:30364:0]   | 8k..inf| zero-copy   | rc_mlx5/mlx5_0:1                          |
[1796407437.175566] [vm:30364:0]   +--------+-------------+-------------------------------------------+
[1796407437.216081] [vm:30378:0]   | disagg-probe-target intra-node cfg#1                          |
[1796407437.216081] [vm:30378:0]   | remote memory read by ucp_get*(multi) into host memory from host |
[1796407437.216081] [vm:30378:0]   | 0..inf | zero-copy   | cma/memory                                |
[1796407437.216081] [vm:30378:0]   | disagg-probe-initiator intra-node cfg#1                          |
[1796407437.216081] [vm:30378:0]   | active message by ucp_am_send* from host memory |
[1796407437.216081] [vm:30378:0]   | 0..inf | short   | tcp/lo                                |
"""


def test_the_transport_is_read_from_ucx_tables():
    rows = parse_proto_info(UCX_TABLE)
    assert [(r["scope"], r["config"]) for r in rows] == [("inter-node", "rc_mlx5/mlx5_0:1")] * 2  # the initiator's reads only


def _env(*args, extra_env=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("UCX_")} | (extra_env or {})
    return subprocess.run([sys.executable, "-m", "disagg", "doctor", "--env", *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.slow
def test_env_measures_a_nixl_transfer_on_this_host():
    pytest.importorskip("nixl_cu12")
    r = _env("--output-format", "json", "--env-bytes", str(4 << 20))
    doc = json.loads(r.stdout)
    t = doc["environment"]["nixl"]["transfer"]
    assert t["error"] is None and t["bytes"] == 4 << 20 and t["seconds"] > 0 and t["backend"] == "UCX"
    assert t["transport"], t  # what UCX chose (cma/memory between two processes of one host here), from UCX's own tables
    assert doc["environment"]["packages"]["nixl"] and doc["environment"]["ucx"]["version"]
    assert r.returncode in (0, 1) and all(f["code"].startswith("DG7") for f in doc["findings"])


@pytest.mark.slow
def test_env_with_ucx_tls_lacking_active_messages_is_an_error():
    pytest.importorskip("nixl_cu12")
    r = _env(extra_env={"UCX_TLS": "cuda_copy"})
    assert r.returncode == 1, r.stdout + r.stderr
    assert "DG703 [error] UCX_TLS=cuda_copy" in r.stdout
