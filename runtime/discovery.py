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
registration carries the run id (a hash of the run's secret), never the secret; the secret reaches each host
through its environment (DISAGG_RUN_SECRET).
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

    async def range_prefix(self, prefix: str) -> tuple[int, dict[str, dict]]:
        answer = await self.call("/v3/kv/range", {"key": _b64(prefix), "range_end": _prefix_end(prefix)})
        return int(answer["header"]["revision"]), {_unb64(kv["key"]): _value(kv) for kv in answer.get("kvs") or []}

    async def watch(self, prefix: str, start_revision: int):
        """Yield ("put", key, value) and ("delete", key, None) from `start_revision` on; returns when the stream ends."""
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
                    for ev in result.get("events") or []:
                        key = _unb64(ev["kv"]["key"])
                        if ev.get("type") == "DELETE":
                            yield "delete", key, None
                        else:
                            yield "put", key, _value(ev["kv"])
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
    """One process's key in etcd, held by a lease it keeps alive; re-created if the lease is lost (etcd was away
    longer than the TTL) and revoked on a clean exit, so peers drop the process at once instead of after the TTL."""

    etcd: Etcd
    key: str
    value: dict
    ttl: int = LEASE_TTL
    on_error: Callable[[str], None] = lambda reason: None
    lease: str | None = None

    async def start(self) -> None:
        """Register; DiscoveryError("duplicate_id") when another live process holds the key."""
        self.lease = await self.etcd.grant(self.ttl)
        held = await self.etcd.create(self.key, json.dumps(self.value), self.lease)
        if held is not None and (held.get("host"), held.get("port")) == (self.value.get("host"), self.value.get("port")):
            # Our own previous incarnation (a restart listens on the socket the supervisor holds): its lease has not
            # expired yet. Take the key over rather than wait out the TTL.
            await self.etcd.put(self.key, json.dumps(self.value), self.lease)
        elif held is not None:
            await self.etcd.revoke(self.lease)
            where = f"{held.get('host', '?')}:{held.get('port', '?')} (pid {held.get('pid', '?')})"
            raise DiscoveryError("duplicate_id", f"{self.key} is already registered by {where}: two processes claim worker id "
                                                 f"{self.value.get('worker_id')!r}; give each host its own --host-id")

    async def keep(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                if await self.etcd.keepalive(self.lease):
                    continue
                log.warning("lease of %s expired (etcd unreachable for over %d s?): registering again", self.key, self.ttl)
                self.on_error("lease_lost")
                await self.start()
            except DiscoveryError as exc:
                log.warning("%s", exc)
                self.on_error(exc.reason)

    async def close(self) -> None:
        if self.lease is not None:
            try:
                await self.etcd.revoke(self.lease)
            except DiscoveryError:
                pass  # the lease expires by itself


class Watcher:
    """Keep `on_put(key, value)` / `on_delete(key)` in step with every key under `prefix`: read it all, then watch
    from that revision; after a lost connection, read it all again (keys deleted meanwhile are reported deleted)."""

    def __init__(self, etcd: Etcd, prefix: str, on_put: Callable[[str, dict], None], on_delete: Callable[[str], None],
                 on_status: Callable[[bool, str | None], None] = lambda up, why: None):
        self.etcd, self.prefix = etcd, prefix
        self.on_put, self.on_delete, self.on_status = on_put, on_delete, on_status
        self.known: set[str] = set()
        self.synced = asyncio.Event()

    async def run(self) -> None:
        backoff = 0.2
        while True:
            try:
                revision, current = await self.etcd.range_prefix(self.prefix)
                for key in self.known - current.keys():
                    self.on_delete(key)
                for key, value in current.items():
                    self.on_put(key, value)
                self.known = set(current)
                self.synced.set()
                self.on_status(True, None)
                backoff = 0.2
                async for kind, key, value in self.etcd.watch(self.prefix, revision + 1):
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


def worker_id_of(key: str) -> str:
    return key.rsplit("/", 1)[-1]


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

