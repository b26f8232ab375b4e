"""Host rules (DG7xx): they read this machine (`disagg doctor --env`): its NICs, RDMA ports, GPUs, UCX settings and a
measured NIXL transfer, with the UCX settings the config files given ask for. Like live rules they never run on a
config alone (`live = True`); they say nothing outside a HostContext."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from disagg.doctor.finding import Finding, Fix
from disagg.doctor.host import HostFacts
from disagg.schemas.model import Deployment


@dataclass
class Setting:
    """A UCX setting in force: from this shell's environment, or a worker's env in a config file."""

    value: str
    where: str  # "environment" or a file path
    line: int = 1
    column: int = 1
    worker: str | None = None


@dataclass
class HostContext:
    facts: HostFacts
    env: dict[str, str] = field(default_factory=dict)
    deployments: list[Deployment] = field(default_factory=list)

    def settings(self, key: str) -> list[Setting]:
        out = [Setting(self.env[key], "environment")] if key in self.env else []
        for dep in self.deployments:
            for w in dep.workers:
                s = w.env.get(key)
                if s is not None and isinstance(s.value, str) and "$" not in s.value:
                    out.append(Setting(s.value, dep.path, s.span.line if s.span else 1, s.span.column if s.span else 1, w.name))
        return out

    def finding(self, rule: Any, message: str, at: Setting | None = None, severity=None, fix: Fix | None = None, **extra: Any) -> Finding:
        where, line, col = (at.where, at.line, at.column) if at is not None and at.where != "environment" else ("host", 1, 1)
        return Finding(rule.code, rule.name, severity if severity is not None else rule.severity, message, where, line, col, line, col, fix, extra)


def host_context(ctx) -> HostContext | None:
    return ctx if isinstance(ctx, HostContext) else None


def tls_tokens(value: str) -> list[str]:
    return [t.strip().lower() for t in value.split(",") if t.strip()]


def devices(value: str) -> list[str]:
    """UCX_NET_DEVICES entries without their port (`mlx5_0:1` -> `mlx5_0`)."""
    return [re.sub(r":\d+$", "", d.strip()) for d in value.split(",") if d.strip()]
