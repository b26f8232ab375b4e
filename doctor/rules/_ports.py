"""Every port a prefill/decode process binds on its network: one table for the rules about ports (DG207: the NIXL side
channel; DG611: SGLang's bootstrap server; DG304: any two binds of one port on one network).

A port is taken from what the file writes, else from the engine's default when a source says what it is; a value
set at run time (`$PORT`) or a default the release decides but the file does not pin is left out (Unknown, never
guessed). Defaults, with where they are defined:

- `vllm serve --port`: 8000 (vllm-project/vllm vllm/entrypoints/openai/cli_args.py, `FrontendArgs.port = 8000`).
- `python -m sglang.launch_server --port`: 30000 (sgl-project/sglang python/sglang/srt/server_args.py,
  `ServerArgs.port = 30000`).
- NIXL side channel: `VLLM_NIXL_SIDE_CHANNEL_PORT` (5557 before vLLM 0.11.1, 5600 after: knowledge patterns
  vllm.nixl_side_channel_port_5557/5600) plus the data-parallel rank's offset; the scheduler listens there
  (vllm/distributed/kv_transfer/kv_connector/v1/nixl_connector.py, `NixlConnectorScheduler.side_channel_port =
  VLLM_NIXL_SIDE_CHANNEL_PORT + data_parallel_rank * tensor_parallel_size`, later `+ data_parallel_index`): with one
  DP rank, the port itself. Dynamo's vLLM worker picked a free port per worker in 0.4-0.6.
- P2pNcclConnector: each rank of the engine binds a ZMQ socket on `kv_port + rank` (vllm/distributed/kv_transfer/
  kv_connector/v1/p2p/p2p_nccl_engine.py, `port = int(self.config.kv_port) + port_offset`, `port_offset` the rank);
  `kv_port` defaults to 14579 (vllm/config/kv_transfer.py, `KVTransferConfig.kv_port`).
- SGLang's bootstrap server (prefill servers only): `--disaggregation-bootstrap-port`, default 8998 (knowledge
  pattern sglang.bootstrap_port_default); Dynamo's SGLang worker reserves a free one itself from 0.4.1.
- vLLM's MooncakeConnector: the prefill side's bootstrap server on `VLLM_MOONCAKE_BOOTSTRAP_PORT` (+ the DP rank's
  offset; vllm/distributed/kv_transfer/kv_connector/v1/mooncake_connector.py, `get_mooncake_side_channel_port`);
  compared only when the file writes the port.
- vLLM's KV-events publisher (ZMQ) when `--kv-events-config` enables it: its `endpoint`, default `tcp://*:5557`
  (vllm/config/kv_events.py, `KVEventsConfig.endpoint`).
- llm-d's P/D routing sidecar (`/app/pd-sidecar`) `--port`: 8000 in every release read (llm-d/llm-d-router
  cmd/pd-sidecar/main.go:44 at v0.4.0 86f5af75, `flag.String("port", "8000", ...)`; pkg/sidecar/proxy/options.go
  `defaultPort = "8000"` at v0.10.0 71f4f099). It runs beside vLLM in one pod and forwards to `--vllm-port`.
- LightLLM (ModelTC/lightllm@fc72ffab9a3455cfb571f22d45ab777cc29de0de): `--port`, default 8000 (lightllm/server/
  api_cli.py:18); `--nccl_port`, default 28765 (api_cli.py:150-152), the `tcp://nccl_host:nccl_port` rendezvous of
  its ranks (lightllm/utils/dist_utils.py:101-106), whose rank 0 hosts the TCPStore server on that port (torch 2.13.0
  wheel, torch/distributed/rendezvous.py:162-207,210-235: `start_daemon = rank == 0`), so only the server that holds
  rank 0 binds it (node rank 0 where `--nnodes` spreads it; api_cli.py:117-118); and a decode server's KV-move rpyc
  server on `--pd_decode_rpyc_port`, default 42000 (api_cli.py:39-44; router/model_infer/mode_backend/continues_batch/
  pd_mode/decode_node_impl/decode_kv_move_manager.py:371, `ThreadedServer(manager, port=args.pd_decode_rpyc_port)`).
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple

from disagg.schemas import knowledge
from disagg.schemas.model import Worker
from disagg.schemas.source import Span

from ._helpers import connector_of

VLLM_HTTP_DEFAULT = 8000
SGLANG_HTTP_DEFAULT = 30000
SGLANG_BOOTSTRAP_DEFAULT = "8998"  # ServerArgs.disaggregation_bootstrap_port (knowledge: sglang.bootstrap_port_default)
KV_PORT_DEFAULT = 14579
LIGHTLLM_HTTP_DEFAULT = 8000
_LIGHTLLM_PORTS = (("nccl-port", 28765, "nccl", "NCCL rendezvous"), ("pd-decode-rpyc-port", 42000, "kv_rpyc", "KV-move rpyc server"))
KV_EVENTS_DEFAULT = "tcp://*:5557"
SIDECAR_HTTP_DEFAULT = 8000


class Bind(NamedTuple):
    port: int
    kind: str  # http | side_channel | kv_port | bootstrap | kv_events
    what: str  # in words, for messages: "HTTP --port 8000 (the default)"
    setting: str  # the setting or flag whose span locates it ("" for the worker's own span)
    written: bool  # the file writes the port (not a default)


def _int(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value < 65536 else None
    if isinstance(value, str) and value.strip().isdigit():
        n = int(value.strip())
        return n if 0 < n < 65536 else None
    return None


def _count(w: Worker, key: str) -> int | None:
    n = _int(w.known(key, 1))
    return n if n is not None and n < 1024 else None


def side_channel_port(w: Worker) -> tuple[str | None, bool]:
    """(the NIXL side-channel port as written, or "default", whether written); None when set at run time or
    reserved per worker by Dynamo."""
    s = w.settings.get("side_channel_port")
    if s is not None:
        return (str(s.value).strip() if s.known else None), True
    if w.program == "dynamo.vllm":
        reserved = knowledge.pattern("dynamo", "vllm.side_channel_port_reserved").releases
        if knowledge.verdict(w.target, "dynamo", reserved) is not False:
            return None, False  # Dynamo reserved a port per worker in 0.4-0.6, and the release may be one of those
    return "default", False


def _side_channel_default(w: Worker) -> int | None:
    """5557 or 5600 when the targeted vLLM release says which; None when it could be either."""
    for port, name in ((5557, "vllm.nixl_side_channel_port_5557"), (5600, "vllm.nixl_side_channel_port_5600")):
        if w.target.verdict("vllm", knowledge.fact(name).releases) is True:
            return port
    return None


def bootstrap_port(w: Worker) -> str | None:
    """An SGLang prefill server's bootstrap port as written or the default; None when set at run time or reserved."""
    s = w.settings.get("bootstrap_port")
    if s is None and w.program == "dynamo.sglang":
        reserved = knowledge.pattern("dynamo", "sglang.bootstrap_port_reserved").releases
        if knowledge.verdict(w.target, "dynamo", reserved) is not False:
            return None
    if s is not None and not s.known:
        return None
    return str(s.value) if s is not None else SGLANG_BOOTSTRAP_DEFAULT


def _nixl(w: Worker) -> bool:
    names, _ = connector_of(w)
    return bool(names) and any("nixl" in n.lower() for n in names)


def binds(w: Worker) -> list[Bind]:
    """The ports `w` binds that the file and the sourced defaults determine."""
    out: list[Bind] = []
    s = w.settings.get("port")
    if w.program == "vllm" and "headless" in w.flags:
        # `vllm serve --headless` starts engine cores and no API server: it binds no HTTP port
        # (vllm-project/vllm as in tlrmchlsmth/vllm@527ca32 vllm/entrypoints/cli/serve.py:53-60, 106, 137-145)
        pass
    elif s is not None:
        port = _int(s.value) if s.known else None
        if port is not None:
            out.append(Bind(port, "http", f"HTTP {s.origin} {port}", "port", True))
    elif w.program == "vllm" and w.is_engine:
        out.append(Bind(VLLM_HTTP_DEFAULT, "http", f"HTTP --port {VLLM_HTTP_DEFAULT} (vllm serve's default)", "", False))
    elif w.program == "sglang" and w.is_engine:
        out.append(Bind(SGLANG_HTTP_DEFAULT, "http", f"HTTP --port {SGLANG_HTTP_DEFAULT} (sglang's default)", "", False))
    elif w.program == "lightllm" and w.is_engine:
        out.append(Bind(LIGHTLLM_HTTP_DEFAULT, "http", f"HTTP --port {LIGHTLLM_HTTP_DEFAULT} (LightLLM's default)", "", False))
    elif w.program == "llm-d-routing-sidecar":
        out.append(Bind(SIDECAR_HTTP_DEFAULT, "http", f"HTTP --port {SIDECAR_HTTP_DEFAULT} (the routing sidecar's default)", "", False))
    if w.program == "lightllm" and w.is_engine:
        out.extend(_lightllm(w))
    if w.engine == "vllm" and w.is_engine and not w.program.startswith("dynamo-v0") and _nixl(w):
        value, written = side_channel_port(w)
        port = _int(value) if value not in (None, "default") else (_side_channel_default(w) if value == "default" else None)
        if port is not None:  # data-parallel rank 0's port (the offset of the other ranks changed between releases)
            out.append(Bind(port, "side_channel", f"NIXL side channel {port}" + ("" if written else " (VLLM_NIXL_SIDE_CHANNEL_PORT's default)"),
                            "side_channel_port", written))
    if w.engine == "vllm" and w.is_engine:
        out.extend(_p2p(w))
        out.extend(_kv_events(w))
        out.extend(_mooncake(w))
    if w.engine == "sglang" and w.role == "prefill" and w.is_engine and not w.known("engine_part"):
        b = bootstrap_port(w)
        port = _int(b) if b is not None else None
        if port is not None:
            written = "bootstrap_port" in w.settings
            out.append(Bind(port, "bootstrap", f"bootstrap server {port}" + ("" if written else " (the default)"), "bootstrap_port", written))
    return out


def _lightllm(w: Worker) -> list[Bind]:
    """A LightLLM server's rendezvous port (where it holds rank 0) and, for a decode server, its KV-move rpyc port."""
    out = []
    for flag, default, kind, what in _LIGHTLLM_PORTS:
        if kind == "kv_rpyc" and w.role != "decode":
            continue
        node_rank = w.flags.get("node-rank")
        if kind == "nccl" and node_rank is not None and (not node_rank.known or str(node_rank.value).strip() != "0"):
            continue  # another node's part of the engine holds no rank 0 (a node rank set at run time may be any)
        s = w.flags.get(flag)
        port = default if s is None else (_int(s.value) if s.known else None)
        if port is not None:
            name = "--" + flag.replace("-", "_")
            out.append(Bind(port, kind, f"{what} {name} {port}" + (" (LightLLM's default)" if s is None else ""), flag if s else "", s is not None))
    return out


def _p2p(w: Worker) -> list[Bind]:
    s = w.settings.get("kv_config")
    port = w.settings.get("kv_port")
    if s is not None and s.known and isinstance(s.value, dict):
        written = "kv_port" in s.value
        base, at = (_int(s.value.get("kv_port")) if written else KV_PORT_DEFAULT), "kv_config"
    elif port is not None and port.known and port.origin == "kv-transfer-config kv_port":
        # a config with parts set at run time elsewhere (`"kv_ip":"$(hostname -I)"`) whose kv_port is written
        written, base, at = True, _int(port.value), "kv_port"
    else:
        return []
    names, _ = connector_of(w)
    if not names or not any(n == "P2pNcclConnector" for n in names) or base is None:
        return []
    ranks = (_count(w, "tp") or 1) * (_count(w, "pp") or 1)
    return [Bind(base + r, "kv_port", f"P2pNccl kv_port {base}" + (f" + rank {r}" if r else "") + ("" if written else " (the default)"), at, written)
            for r in range(min(ranks, 64))]


def _mooncake(w: Worker) -> list[Bind]:
    s = w.env.get("VLLM_MOONCAKE_BOOTSTRAP_PORT")
    if s is None or w.role != "prefill":
        return []
    names, _ = connector_of(w)
    port = _int(s.value) if s.known else None
    if not names or "MooncakeConnector" not in names or port is None:
        return []
    return [Bind(port, "mooncake_bootstrap", f"Mooncake bootstrap server {port}", "env:VLLM_MOONCAKE_BOOTSTRAP_PORT", True)]


_ENDPOINT = re.compile(r"^tcp://(?:\*|0\.0\.0\.0|\[?::\]?|[A-Za-z0-9.-]+):(\d+)$")


def _kv_events(w: Worker) -> list[Bind]:
    s = w.flags.get("kv-events-config")
    if s is None or not s.known or not isinstance(s.value, str):
        return []
    try:
        cfg = json.loads(s.value)
    except ValueError:
        return []
    if not isinstance(cfg, dict) or cfg.get("enable_kv_cache_events") is not True or cfg.get("publisher", "zmq") != "zmq":
        return []
    endpoint = cfg.get("endpoint", KV_EVENTS_DEFAULT)
    m = _ENDPOINT.match(endpoint) if isinstance(endpoint, str) else None
    port = _int(m.group(1)) if m else None
    if port is None:
        return []
    return [Bind(port, "kv_events", f"KV-events publisher {endpoint}" + ("" if "endpoint" in cfg else " (the default)"), "kv-events-config", "endpoint" in cfg)]


def where(w: Worker, b: Bind) -> Span:
    if b.setting.startswith("env:"):
        s = w.env.get(b.setting[4:])
        return s.span if s is not None and s.span is not None else w.span
    return w.where(b.setting) if b.setting else w.span
