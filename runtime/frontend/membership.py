"""The frontend's worker list in a multi-host run: the workers registered in etcd under its namespace and model.

A registration signed with this run's secret adds a worker to the pool (health checks then say when it is up); one
of another run (another secret) or unsigned (forged: etcd has no authentication) is ignored and counted. A known id
at a new address moves only once the worker proves itself there (pool.add). A deleted key (the lease expired: the
process or its host died, or it left cleanly) removes the worker registered by exactly that key at once when it does
not answer, else after a grace period in which it registers again (pool.unregister): an etcd restarted empty, or a
key deleted by hand, does not take a healthy worker out of service. The
frontend registers itself too, so each frontend knows how many serve the deployment (`disagg_frontends`): each one
applies max-prefill-queue-size to its own queue, so the deployment queues up to that many times the setting.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..discovery import LEASE_TTL, Etcd, Registration, Watcher, key_prefix, registered, registration_value, spec_of

log = logging.getLogger("disagg.frontend")

NO_WORKERS_WARNING = 10.0  # seconds after start before a role with no registered worker is logged


class Membership:
    def __init__(self, front, etcd_url: str, namespace: str, advertise: str, host_id: str, port: int):
        self.front = front
        self.etcd = Etcd(etcd_url)
        self.prefix = key_prefix(namespace, front.plan.served_model_name)
        self.me = f"{self.prefix}frontend/{host_id}-{port}"
        self.registration = Registration(self.etcd, self.me, registration_value(f"{host_id}-{port}", "frontend", advertise, port, front.run_id),
                                         front.secret, on_error=self._error)
        self.frontends: set[str] = set()
        self.foreign: set[str] = set()
        self.watcher = Watcher(self.etcd, self.prefix, self.on_put, self.on_delete, self._status, self._reset)
        front.pool.synced = self.watcher.synced.is_set  # the first pass that holds requests waits for etcd's first read
        front.pool.on_event = self._event
        front.pool.missing_hint = f"none is registered under {self.prefix}<role>/ in etcd at {etcd_url} (check --namespace and the model name on every host)"
        front.metrics.discovery_up.set(0)

    def _error(self, reason: str) -> None:
        self.front.metrics.discovery_errors.labels(reason).inc()

    def _status(self, up: bool, why: str | None) -> None:
        self.front.metrics.discovery_up.set(1 if up else 0)
        if not up:
            self._error("unreachable")

    def _reset(self, why: str) -> None:
        self._error("etcd_reset")
        log.warning("%s: keeping every worker that still answers while they register again", why)

    def _event(self, reason: str, detail: str) -> None:
        self._error(reason)
        log.warning("%s", detail)

    def _role(self, key: str) -> str:
        return key[len(self.prefix):].split("/", 1)[0]  # /<namespace>/<model>/<role>/<id>

    def on_put(self, key: str, value: dict) -> None:
        role = self._role(key)
        if role not in ("decode", "prefill", "frontend"):
            return
        why = registered(self.front.secret, self.prefix, key, value)
        if why is not None:
            if (key, value.get("sig")) not in self.foreign:  # once per record, not per watch event
                self.foreign.add((key, value.get("sig")))
                if value.get("run_id") != self.front.run_id:
                    self._error("other_run")
                    log.warning("%s is registered by another run (run id %s, not %s): a different DISAGG_RUN_SECRET; ignored", key, value.get("run_id"), self.front.run_id)
                else:
                    self._error("bad_signature" if why == "unsigned" else why)
                    log.warning("%s: a registration without this run's signature (or at a key that is not its own): ignored; "
                                "it names %s:%s", key, value.get("host", "?"), value.get("port", "?"))
            return
        if role == "frontend":
            self.frontends.add(key)
            self.front.metrics.frontends.set(len(self.frontends))
            return
        spec = spec_of(role, value)
        if spec is None:
            self._error("bad_registration")
            log.warning("%s: registration without worker_id, host and port: ignored", key)
            return
        self.front.pool.add(spec, key)

    def on_delete(self, key: str) -> None:
        self.foreign = {f for f in self.foreign if f[0] != key}
        if self._role(key) == "frontend":
            self.frontends.discard(key)
            self.front.metrics.frontends.set(len(self.frontends))
            return
        self.front.pool.unregister(key, "its registration is gone (lease expired or the worker left)")

    async def run(self) -> None:
        tasks = [asyncio.ensure_future(self.watcher.run())]
        try:
            while True:  # etcd may start after this frontend: keep trying to register
                try:
                    await self.registration.start()
                    break
                except Exception as exc:  # DiscoveryError: unreachable now; duplicate when a previous incarnation's lease lives on
                    log.warning("cannot register this frontend yet: %s", exc)
                    await asyncio.sleep(LEASE_TTL / 2)
            tasks.append(asyncio.ensure_future(self.registration.keep()))
            started = time.monotonic()
            warned = set()
            while True:
                await asyncio.sleep(1.0)
                if time.monotonic() - started < NO_WORKERS_WARNING:
                    continue
                for role in ("decode", "prefill"):
                    if not self.front.pool.of_role(role) and role not in warned and (role == "decode" or self.front.plan.prefill_workers):
                        warned.add(role)
                        log.warning("no %s worker registered under %s%s/ after %.0f s: check --namespace, the model name and the workers' --discovery",
                                    role, self.prefix, role, NO_WORKERS_WARNING)
                    elif self.front.pool.of_role(role):
                        warned.discard(role)
        finally:
            for t in tasks:
                t.cancel()
            await self.registration.close()
            await self.etcd.close()
