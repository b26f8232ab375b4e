"""Host rules (DG7xx): they read this machine (`disagg doctor --env`): its NICs, RDMA ports, GPUs, UCX settings and a
measured NIXL transfer, with the UCX settings the config files given ask for. Like live rules they never run on a
config alone (`live = True`); they say nothing outside a HostContext."""

from __future__ import annotations

import re

from ...registry import Rule


def host_context(ctx):
    """The HostContext (doctor/host.py) a host rule reads, or None for any other context (a config, a live window).
    Told by an attribute, so that the static doctor's registry loads no dataclass machinery for these rules."""
    return ctx if getattr(ctx, "is_host", False) else None


class HostRule(Rule):
    """A host rule: `check_host` runs only on a HostContext, and says nothing for a config or a live window."""

    live = True

    def check(self, ctx):
        host = host_context(ctx)
        return () if host is None else self.check_host(host)

    def check_host(self, host):
        raise NotImplementedError


def tls_tokens(value: str) -> list[str]:
    return [t.strip().lower() for t in value.split(",") if t.strip()]


def devices(value: str) -> list[str]:
    """UCX_NET_DEVICES entries without their port (`mlx5_0:1` -> `mlx5_0`)."""
    return [re.sub(r":\d+$", "", d.strip()) for d in value.split(",") if d.strip()]
