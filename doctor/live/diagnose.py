"""Live diagnosis: run the DG5xx rules over the window, remember when each finding was first certain."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from disagg.schemas.engines import setting_of
from disagg.schemas.model import Deployment
from disagg.schemas.routing import RoutingPolicy
from disagg.schemas.source import Span

from ..finding import Finding, Fix
from .window import Window


@dataclass
class LiveContext:
    window: Window
    target: str  # the frontend URL
    deployment: Deployment | None = None  # the config, when known
    static: list[Finding] = field(default_factory=list)
    min_requests: int = 5  # requests in the window before "prefill traffic is zero" counts as certain
    probe: dict | None = None  # what --probe's request showed (probe.py), evidence on its own

    def _decode(self):
        from ..rules._helpers import v0_decode

        return v0_decode(self.deployment) if self.deployment is not None else None

    def policy(self) -> RoutingPolicy | None:
        dec = self._decode()
        if dec is not None:
            from ..rules._helpers import routing_policy

            return routing_policy(dec)
        last = self.window.last
        rows = last.signals.get("policy") if last else None
        if rows:
            lab = rows[0][0]
            try:
                return RoutingPolicy(lab["remote_prefill"] == "true", lab["conditional_disagg"] == "true", int(lab["max_local_prefill_length"]), int(lab["max_prefill_queue_size"]))
            except (KeyError, ValueError):
                return None
        return None

    def expected_workers(self, role: str) -> int | None:
        if self.deployment is None:
            return None
        roles = ("decode", "aggregated") if role == "decode" else (role,)  # the runtime's decode workers serve aggregated too
        counts = [w.replicas.value for w in self.deployment.of_role(*roles) if w.is_engine]
        return sum(c for c in counts if isinstance(c, int)) if counts else 0

    def decode_key(self, key: str) -> Span | None:
        """Where the decode worker sets `key` (resolved through common-configs), else the decode worker itself."""
        dec = self._decode()
        return dec.where(setting_of(key)) if dec is not None else None

    def role_span(self, role: str) -> Span | None:
        if self.deployment is None:
            return None
        ws = [w for w in self.deployment.of_role(role) if w.is_engine]
        return ws[0].span if ws else None

    def static_finding(self, code: str) -> Finding | None:
        return next((f for f in self.static if f.code == code), None)

    def finding(self, rule: Any, message: str, severity=None, path: Span | None = None, fix: Fix | None = None, **extra: Any) -> Finding:
        """A live finding placed at the config line it concerns (when a config is known), else at the target URL."""
        if self.deployment is not None and path is not None:
            where, line, col, eline, ecol = self.deployment.path, path.line, path.column, path.end_line, path.end_column
        else:
            where, line, col, eline, ecol = self.target, 1, 1, 1, 1
        return Finding(rule.code, rule.name, severity if severity is not None else rule.severity, message, where, line, col, eline, ecol, fix, extra)


@dataclass
class Held:
    finding: Finding
    first_seen_s: float


class Diagnoser:
    """Evaluates the live rules each tick; a finding's identity is its code plus its cause or subject."""

    def __init__(self, rules):
        self.rules = [r() for r in rules]
        self.first_seen: dict[tuple, float] = {}
        self.current: dict[tuple, Held] = {}

    def step(self, ctx: LiveContext) -> tuple[list[Held], list[Held]]:
        """(new findings, all findings holding now), ranked by severity then confidence."""
        t = ctx.window.last.t if ctx.window.last else 0.0
        now: dict[tuple, Held] = {}
        for rule in self.rules:
            for f in rule.check(ctx):
                key = (f.code, f.extra.get("cause") or f.extra.get("subject") or "")
                first = self.first_seen.setdefault(key, t)
                now[key] = Held(f._replace(extra={**f.extra, "first_seen_s": round(first, 2)}), first)
        new = [h for k, h in now.items() if k not in self.current]
        self.current = now
        rank = lambda h: (-h.finding.severity, -h.finding.extra.get("confidence", 0.5), h.finding.code)  # noqa: E731
        return sorted(new, key=rank), sorted(now.values(), key=rank)
