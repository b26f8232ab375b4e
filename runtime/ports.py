"""Ports chosen now for a process that binds them later (a vLLM server, its NIXL side channel, a test's etcd).

Such a choice is only safe from ports the kernel never hands out by itself. A port taken with bind(0) comes from the
ephemeral range (/proc/sys/net/ipv4/ip_local_port_range, 32768-60999 by default), and once released it can be given
to the next process that binds port 0 or opens a connection, before its intended owner binds it. Seen in CI: the port
chosen for a decode engine's VLLM_NIXL_SIDE_CHANNEL_PORT was taken meanwhile, vLLM's handshake listener thread died on
"Address already in use", and the engine never finished starting (vLLM 0.32.0 waits for that thread). Ports below the
ephemeral range are taken only by programs that name them, so one that binds now stays free unless one of those does.
"""

from __future__ import annotations

import random
import socket

_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
_LOWEST = 10000  # below this sit well-known and registered service ports


def _ephemeral_start() -> int:
    try:
        with open(_RANGE_FILE, encoding="ascii") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default; elsewhere bind(0) decides below


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` now, below the kernel's ephemeral range where there is room; else any free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    top = _ephemeral_start()
    for _ in range(200 if top - _LOWEST >= 1000 else 0):
        port = random.randrange(_LOWEST, top)
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]
