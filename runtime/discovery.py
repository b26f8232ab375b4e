"""Workers found through etcd, for `disagg serve` across hosts.

Each process registers one key, `/<namespace>/<model>/<role>/<id>` -> JSON (id, role, host, port, KV address, version,
run id, pid), held by a lease of LEASE_TTL seconds that it keeps alive; when the process dies the lease expires and
etcd deletes the key. Frontends (and decode workers, for their prefill peers) read the prefix and then watch it, so
workers come and go as their leases do. A key is created only if absent (an etcd transaction), so two processes that
claim one id are refused with the other's address instead of overwriting each other.

We speak etcd's v3 HTTP/JSON gateway (`/v3/kv/range`, `/v3/kv/txn`, `/v3/lease/*`, `/v3/watch`, base64 keys; part
of every etcd server since 3.3, checked here against Debian's etcd 3.4.23) with the aiohttp the runtime already
uses, instead of a client library: the Python gRPC clients (python-etcd3, etcd3gw) are unmaintained and pin old
grpcio/protobuf releases, and the gateway's watch is a plain streaming response. Nothing secret goes into etcd: a
registration carries the run id (an HMAC of a label under the run's secret) and a signature over its key and fields
(identity.sign), never the secret; the secret reaches each host through its environment (DISAGG_RUN_SECRET).

etcd has no authentication here, so nothing in it is believed alone: a registration without this run's signature is
ignored (and counted), a worker proves its address on the channel's handshake before traffic goes there
(frontend/pool.py), a worker whose key is deleted puts it back within a keep-alive period (Registration.keep), and an
etcd that lost its data (its cluster id changed, or its revision went backwards) is re-populated by the workers
themselves while the frontends keep every worker that still answers (Watcher, pool.unregister).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .identity import sign, signed_by
from .plan import WorkerSpec

log = logging.getLogger("disagg.discovery")

LEASE_TTL = 5  # seconds: a dead process's workers leave every frontend within this (plus one watch event)
VERSION = "1"  # of the registration's layout


class DiscoveryError(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason  # unreachable | bad_answer | duplicate_id | lease_lost


def etcd_base(url: str) -> str:
    """`etcd://host:port` (or http://host:port) -> the gateway's base URL; ValueError for anything else."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("etcd", "http") or not parsed.hostname:
        raise ValueError(f"--discovery {url!r}: expected etcd://HOST:PORT (etcd's client URL, e.g. etcd://10.0.0.1:2379)")
    return f"http://{parsed.hostname}:{parsed.port or 2379}"


def key_prefix(namespace: str, model: str, role: str = "") -> str:
    return f"/{namespace}/{model}/" + (f"{role}/" if role else "")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def _prefix_end(prefix: str) -> str:
    """The range_end that selects every key starting with `prefix` (its last byte plus one)."""
    raw = prefix.encode()
    return base64.b64encode(raw[:-1] + bytes([raw[-1] + 1])).decode()


def check_reachable(url: str, timeout: float = 3.0) -> str | None:
    """None when etcd answers at `url`, else why not, in words (for the command line, before anything starts)."""
    import urllib.error
    import urllib.request

    base = etcd_base(url)
    try:
        with urllib.request.urlopen(base + "/version", timeout=timeout) as answer:
            body = json.loads(answer.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"cannot reach etcd at {url} ({getattr(exc, 'reason', exc)}): start it, or check the address and that this host can reach it"
    if "etcdserver" not in body:
        return f"{url} answers but is not etcd (GET /version said {str(body)[:80]})"
    return None


class Etcd:
    """The few etcd calls discovery needs, over the v3 JSON gateway."""

    def __init__(self, url: str):
        self.url = url
        self.base = etcd_base(url)
        self._session = None

    def session(self):
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=3))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(self, path: str, body: dict, timeout: float = 3.0) -> dict:
        import aiohttp

        try:
            async with self.session().post(self.base + path, json=body, timeout=aiohttp.ClientTimeout(total=timeout)) as answer:
                data = await answer.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise DiscoveryError("unreachable", f"etcd at {self.url}: {type(exc).__name__}: {exc}") from None
        except ValueError:
            raise DiscoveryError("bad_answer", f"etcd at {self.url} answered {path} with something that is not JSON") from None
        if not isinstance(data, dict) or "error" in data or "code" in data and "message" in data:
            raise DiscoveryError("bad_answer", f"etcd at {self.url} refused {path}: {data.get('message') or data.get('error') if isinstance(data, dict) else data}")
        return data

    async def grant(self, ttl: int) -> str:
        return str((await self.call("/v3/lease/grant", {"TTL": ttl}))["ID"])

    async def keepalive(self, lease: str) -> bool:
        """True while the lease lives; False once it has expired or was revoked."""
        answer = await self.call("/v3/lease/keepalive", {"ID": lease})
        return int((answer.get("result") or {}).get("TTL", 0)) > 0

    async def revoke(self, lease: str) -> None:
        await self.call("/v3/lease/revoke", {"ID": lease})

    async def create(self, key: str, value: str, lease: str) -> dict | None:
        """Put `key` only if it does not exist; None when created, else the registration that holds it."""
        k = _b64(key)
        answer = await self.call("/v3/kv/txn", {
            "compare": [{"key": k, "target": "CREATE", "create_revision": "0"}],
            "success": [{"request_put": {"key": k, "value": _b64(value), "lease": lease}}],
            "failure": [{"request_range": {"key": k}}],
        })
        if answer.get("succeeded"):
            return None
        kvs = ((answer.get("responses") or [{}])[0].get("response_range") or {}).get("kvs") or []
        return _value(kvs[0]) if kvs else {}

    async def put(self, key: str, value: str, lease: str) -> None:
        await self.call("/v3/kv/put", {"key": _b64(key), "value": _b64(value), "lease": lease})

    async def range_prefix(self, prefix: str) -> tuple[dict, dict[str, dict]]:
        """(etcd's header: cluster_id, revision; key -> registration) for every key under `prefix`."""
        answer = await self.call("/v3/kv/range", {"key": _b64(prefix), "range_end": _prefix_end(prefix)})
        return answer.get("header") or {}, {_unb64(kv["key"]): _value(kv) for kv in answer.get("kvs") or []}

    async def get(self, key: str) -> tuple[dict | None, str | None]:
        """(the registration at `key` or None, the lease that holds it)."""
        kvs = (await self.call("/v3/kv/range", {"key": _b64(key)})).get("kvs") or []
        return (_value(kvs[0]), str(kvs[0].get("lease", "0"))) if kvs else (None, None)

    async def watch(self, prefix: str, start_revision: int):
        """Yield ("put", key, value, revision) and ("delete", key, None, revision) from `start_revision` on; returns when
        the stream ends."""
        import aiohttp

        body = {"create_request": {"key": _b64(prefix), "range_end": _prefix_end(prefix), "start_revision": str(start_revision)}}
        try:
            async with self.session().post(self.base + "/v3/watch", json=body, timeout=aiohttp.ClientTimeout(total=None, sock_connect=3)) as answer:
                async for line in answer.content:
                    if not line.strip():
                        continue
                    result = json.loads(line).get("result") or {}
                    if result.get("canceled"):
                        raise DiscoveryError("bad_answer", f"etcd cancelled the watch: {result.get('cancel_reason', '?')}")
                    rev = int((result.get("header") or {}).get("revision", 0))
                    for ev in result.get("events") or []:
                        key = _unb64(ev["kv"]["key"])
                        if ev.get("type") == "DELETE":
                            yield "delete", key, None, rev
                        else:
                            yield "put", key, _value(ev["kv"]), rev
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            raise DiscoveryError("unreachable", f"etcd watch at {self.url}: {type(exc).__name__}: {exc}") from None


def _value(kv: dict) -> dict:
    try:
        value = json.loads(_unb64(kv.get("value", "")))
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


@dataclass
class Registration:
    """One process's key in etcd, signed with the run's secret, held by a lease it keeps alive. Every keep-alive
    period it checks its key: re-created when the lease is lost (etcd was away longer than the TTL, or restarted
    empty), put back when the key was deleted or overwritten (by anyone: etcd has no authentication). Revoked on a
    clean exit, so peers drop the process at once instead of after the TTL."""

    etcd: Etcd
    key: str
    value: dict
    secret: bytes = b""
    ttl: int = LEASE_TTL
    on_error: Callable[[str], None] = lambda reason: None
    lease: str | None = None

    def __post_init__(self) -> None:
        self.value = sign(self.secret, self.key, self.value)

    async def start(self) -> None:
        """Register; DiscoveryError("duplicate_id") when another live process holds the key."""
        self.lease = await self.etcd.grant(self.ttl)
        held = await self.etcd.create(self.key, json.dumps(self.value), self.lease)
        if held is not None and ((held.get("host"), held.get("port")) == (self.value.get("host"), self.value.get("port"))
                                 or not signed_by(self.secret, self.key, held)):
            # Our own previous incarnation (a restart listens on the socket the supervisor holds): its lease has not
            # expired yet. Take the key over rather than wait out the TTL. A record nobody of this run signed is
            # taken over too: it is not a process that claims our id, only a write into an open etcd.
            await self.etcd.put(self.key, json.dumps(self.value), self.lease)
        elif held is not None:
            await self.etcd.revoke(self.lease)
            where = f"{held.get('host', '?')}:{held.get('port', '?')} (pid {held.get('pid', '?')})"
            raise DiscoveryError("duplicate_id", f"{self.key} is already registered by {where}: two processes claim worker id "
                                                 f"{self.value.get('worker_id')!r}; give each host its own --host-id")

    async def keep(self, interval: float | None = None) -> None:
        while True:
            await asyncio.sleep(interval or self.ttl / 3)
            try:
                await self.check()
            except DiscoveryError as exc:
                log.warning("%s", exc)
                self.on_error(exc.reason)

    async def check(self) -> None:
        """One keep-alive: renew the lease, and put the key back if it is not ours any more."""
        if self.lease is None or not await self.etcd.keepalive(self.lease):
            log.warning("lease of %s is gone (etcd unreachable for over %d s, or restarted without its data): registering again", self.key, self.ttl)
            self.on_error("lease_lost")
            await self.start()
            return
        held, lease = await self.etcd.get(self.key)
        if held == self.value and lease == self.lease:
            return
        if held is None:
            log.warning("%s was deleted while this process lives: registering again", self.key)
            self.on_error("key_deleted")
        else:
            forged = not signed_by(self.secret, self.key, held)
            log.warning("%s was overwritten (%s, now %s:%s): putting this process's registration back", self.key,
                        "without this run's signature" if forged else "by a process of this run", held.get("host", "?"), held.get("port", "?"))
            self.on_error("key_overwritten")
        await self.etcd.put(self.key, json.dumps(self.value), self.lease)

    async def close(self) -> None:
        if self.lease is not None:
            try:
                await self.etcd.revoke(self.lease)
            except DiscoveryError:
                pass  # the lease expires by itself
        await self.etcd.close()


class Watcher:
    """Keep `on_put(key, value)` / `on_delete(key)` in step with every key under `prefix`: read it all, then watch
    from that revision; after a lost connection, read it all again (keys deleted meanwhile are reported deleted).
    An etcd that is not the one read before (another cluster id, or a revision that went backwards: restarted
    without its data) is reported to `on_reset(why)`; its missing keys are still reported deleted, and the caller
    decides what to believe (the frontend keeps the workers that answer while they register again)."""

    def __init__(self, etcd: Etcd, prefix: str, on_put: Callable[[str, dict], None], on_delete: Callable[[str], None],
                 on_status: Callable[[bool, str | None], None] = lambda up, why: None, on_reset: Callable[[str], None] = lambda why: None):
        self.etcd, self.prefix = etcd, prefix
        self.on_put, self.on_delete, self.on_status, self.on_reset = on_put, on_delete, on_status, on_reset
        self.known: set[str] = set()
        self.synced = asyncio.Event()
        self.cluster: str | None = None
        self.revision = 0

    def _same_etcd(self, header: dict) -> None:
        cluster, revision = str(header.get("cluster_id", "")), int(header.get("revision", 0))
        if self.cluster is not None and cluster != self.cluster:
            self.on_reset(f"etcd's cluster id changed ({self.cluster} -> {cluster}): another etcd, or one restarted without its data")
        elif revision < self.revision:
            self.on_reset(f"etcd's revision went backwards ({self.revision} -> {revision}): restarted without its data")
        self.cluster, self.revision = cluster, revision

    async def run(self) -> None:
        backoff = 0.2
        while True:
            try:
                header, current = await self.etcd.range_prefix(self.prefix)
                self._same_etcd(header)
                revision = self.revision
                for key in self.known - current.keys():
                    self.on_delete(key)
                for key, value in current.items():
                    self.on_put(key, value)
                self.known = set(current)
                self.synced.set()
                self.on_status(True, None)
                backoff = 0.2
                async for kind, key, value, rev in self.etcd.watch(self.prefix, revision + 1):
                    self.revision = max(self.revision, rev)
                    if kind == "put":
                        self.known.add(key)
                        self.on_put(key, value)
                    else:
                        self.known.discard(key)
                        self.on_delete(key)
                raise DiscoveryError("unreachable", f"etcd at {self.etcd.url} ended the watch")
            except DiscoveryError as exc:
                self.on_status(False, str(exc))
                log.warning("%s; retrying in %.1f s", exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)


def registration_value(worker_id: str, role: str, host: str, port: int, run_id: str, kv_address: str | None = None, **extra: Any) -> dict:
    return {"worker_id": worker_id, "role": role, "host": host, "port": port, "kv_address": kv_address or host, "version": VERSION,
            "run_id": run_id, "pid": os.getpid(), **extra}


def spec_of(role: str, value: dict) -> WorkerSpec | None:
    """The WorkerSpec a registration describes, or None when it lacks worker_id, host or port."""
    try:
        return WorkerSpec(str(value["worker_id"]), role, 0, int(value["port"]), str(value["host"]), str(value.get("kv_address") or ""))
    except (KeyError, TypeError, ValueError):
        return None


def registered(secret: bytes, prefix: str, key: str, value: dict) -> str | None:
    """Why the registration `value` at `key` is not to be believed, or None: signed with this run's secret, and at
    the key its own role and id name (a signed record copied to another key fails the signature)."""
    if not signed_by(secret, key, value):
        return "unsigned"
    if key != f"{prefix}{value.get('role')}/{value.get('worker_id')}":
        return "bad_registration"
    return None


def interface_of(address: str) -> str | None:
    """The name of this host's network interface that holds IPv4 `address` (for UCX_NET_DEVICES), or None."""
    import fcntl
    import struct

    try:
        wanted = socket.inet_aton(socket.gethostbyname(address))
    except OSError:
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            try:
                raw = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))  # SIOCGIFADDR
            except OSError:
                continue  # no IPv4 address on it
            if raw[20:24] == wanted:
                return name
    return None

