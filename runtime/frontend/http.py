"""The frontend's HTTP surface besides the completions: models, health, workers, metrics, config, fault injection;
and what guards all of it.

- Auth: with an API key (`DISAGG_API_KEY`, `--api-key-file` or `--api-key`), `/v1/*`, `/config`, `/workers` and
  `/debug/*` need `Authorization: Bearer KEY`, as `vllm serve --api-key` does for `/v1`; `/metrics` stays open and
  `/health` answers only ready or not ready without the key.
- Errors: every error, aiohttp's own 404/405/413 included, is OpenAI-shaped JSON and counted by status.
- Limits: a connection that sends no complete request within 10 s is closed (slow headers), a body must arrive
  within 10 s (408), at most `--max-connections` connections (idle ones are closed first; a request beyond the cap
  gets 503), keep-alive 15 s; the open-file limit is raised at start.
- Drain: on SIGTERM the listener closes, requests in flight get up to `--drain-seconds` to finish, new requests on
  open connections get 503; streams still running at the deadline end with an error event and `[DONE]`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal
import time
import weakref

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..identity import HEALTH_CHALLENGE, HEALTH_PROOF, health_proof
from ..openai_api import error_body
from .completions import payload_problem

log = logging.getLogger("disagg.frontend")

HEADER_TIMEOUT = 10.0
KEEPALIVE_TIMEOUT = 15.0
PROTECTED = ("/v1/", "/config", "/workers", "/debug/")


def authorized(front, request: web.Request) -> bool:
    """No API key is set, or the request carries it."""
    if not front.api_key:
        return True
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {front.api_key}".encode())


def error_response(metrics, status: int, message: str, code: str | int | None = None) -> web.Response:
    metrics.errors.labels(str(status)).inc()
    err_type = "invalid_request_error" if status < 500 else "server_error"
    if status == 401:
        err_type = "authentication_error"
    return web.json_response(error_body(message, err_type=err_type, code=code), status=status)


def merge_exposition(parts: list[str]) -> str:
    """Several Prometheus texts as one: a metric family's samples together, its HELP and TYPE once."""
    families: dict[str, list[str]] = {}
    heads: dict[str, list[str]] = {}
    for text in parts:
        current = None
        for line in text.splitlines():
            if not line:
                continue
            if line.startswith("# HELP ") or line.startswith("# TYPE "):
                current = line.split(" ", 3)[2]
                if current not in heads or len(heads[current]) < 2 and line not in heads[current]:
                    heads.setdefault(current, [])
                    if line not in heads[current]:
                        heads[current].append(line)
                families.setdefault(current, [])
                continue
            if line.startswith("#"):
                continue
            name = line.split("{", 1)[0].split(" ", 1)[0]
            fam = current if current is not None and name.startswith(current) else name
            families.setdefault(fam, []).append(line)
    out = []
    for fam, lines in families.items():
        out.extend(heads.get(fam, []))
        out.extend(lines)
    return "\n".join(out) + "\n" if out else ""


class Handlers:
    def __init__(self, front):
        self.f = front

    async def models(self, request: web.Request) -> web.Response:
        p = self.f.plan
        return web.json_response({"object": "list", "data": [{"id": p.served_model_name, "object": "model", "owned_by": "disagg", "max_model_len": p.max_model_len}]})

    async def health(self, request: web.Request) -> web.Response:
        """Ready (200) or not (503). Without the API key (when one is set) that is all it says: no workers, pids,
        addresses or run id. `X-Disagg-Challenge: NONCE` is answered with `X-Disagg-Proof`, an HMAC of the nonce with
        the run's secret: how the supervisor knows the process on its port is its own (identity.health_proof)."""
        f = self.f
        pool = f.pool
        decode_up = pool.any_up("decode")
        ready = decode_up and not f.terminating
        headers = {}
        nonce = request.headers.get(HEALTH_CHALLENGE, "")
        if 0 < len(nonce) <= 128:
            headers[HEALTH_PROOF] = health_proof(f.secret, nonce)
        if not authorized(f, request):
            return web.json_response({"status": "ready" if ready else "not_ready"}, status=200 if ready else 503, headers=headers)
        all_up = all(w.up and w.state == "ready" for w in pool.workers.values())  # a worker that cannot take work now (its reason in last_error) degrades
        status = "shutting_down" if f.terminating else "ok" if all_up else ("degraded" if decode_up else "unavailable")
        return web.json_response({"status": status, "ready": ready, "workers": [w.to_json() for w in pool.workers.values()]},
                                 status=200 if ready else 503, headers=headers)

    async def workers(self, request: web.Request) -> web.Response:
        return web.json_response({"workers": [w.to_json() for w in self.f.pool.workers.values()], "prefill_queue": len(self.f.queue)})

    async def metrics(self, request: web.Request) -> web.Response:
        f = self.f
        up = [w for w in f.pool.workers.values() if w.up]
        results = await asyncio.gather(*(f.backend.metrics(w) for w in up), return_exceptions=True)
        parts = [generate_latest(f.registry).decode()] + [r for r in results if isinstance(r, str)]
        return web.Response(body=merge_exposition(parts).encode(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def config(self, request: web.Request) -> web.Response:
        return web.json_response(self.f.plan.served)  # an allow-list (served_config.py): never the file's text or path

    async def faults(self, request: web.Request) -> web.Response:
        f = self.f
        if not f.fault_injection:
            return error_response(f.metrics, 403, "fault injection is off (start with --fault-injection)", "forbidden")
        body = await request.json()
        out = {}
        for w in f.pool.workers.values():
            try:
                out[w.worker_id] = await f.backend.faults(w, body)
            except Exception as exc:  # noqa: BLE001 - a report, per worker
                out[w.worker_id] = {"error": type(exc).__name__}
        return web.json_response(out)


def make_app(front) -> web.Application:
    h = Handlers(front)
    active: set[asyncio.Task] = set()

    @web.middleware
    async def guard(request: web.Request, handler):
        f = front
        if f.terminating:
            return error_response(f.metrics, 503, "the server is shutting down", "shutting_down")
        server = request.app.get("server")
        if server is not None and len(server.connections) > f.max_connections and shed_idle(server, f.max_connections) > 0:
            return error_response(f.metrics, 503, f"too many connections (over {f.max_connections}), all busy", "overloaded")
        if request.path.startswith(PROTECTED) and not authorized(f, request):
            return error_response(f.metrics, 401, "a valid API key is required (Authorization: Bearer KEY)", "invalid_api_key")
        task = asyncio.current_task()
        active.add(task)
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return error_response(f.metrics, exc.status, exc.reason if exc.status != 413 else f"request body too large ({exc.text})", exc.status)
        except (HttpProcessingError, web.RequestPayloadError) as exc:  # the parser's verdict on a body read in a handler
            return error_response(f.metrics, 400, f"bad request: {payload_problem(exc)}", "bad_request")
        except RecursionError:
            return error_response(f.metrics, 400, "request body is JSON nested too deeply", "invalid_json")
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception as exc:  # noqa: BLE001 - logged; the client gets a 500 in OpenAI's shape, not a traceback
            log.exception("unexpected error on %s", request.path)
            return error_response(f.metrics, 500, f"internal error: {type(exc).__name__}", "internal_error")
        finally:
            active.discard(task)

    app = web.Application(client_max_size=16 * 2**20, middlewares=[guard], handler_args={"max_field_size": 16384})
    app["active"] = active
    app.router.add_post("/v1/completions", lambda r: front.completions.handle(r, chat=False))
    app.router.add_post("/v1/chat/completions", lambda r: front.completions.handle(r, chat=True))
    app.router.add_get("/v1/models", h.models)
    app.router.add_get("/health", h.health)
    app.router.add_get("/workers", h.workers)
    app.router.add_get("/metrics", h.metrics)
    app.router.add_get("/config", h.config)
    app.router.add_post("/debug/faults", h.faults)
    return app


def _close(c) -> None:
    c.force_close()
    if getattr(c, "transport", None) is not None:
        c.transport.close()


def _busy(c) -> bool:
    return getattr(c, "_current_request", None) is not None


def shed_idle(server, max_connections: int, first_seen: dict | None = None) -> int:
    """Close idle connections (oldest first) until at most `max_connections` remain; returns how many are still over."""
    conns = list(server.connections)
    excess = len(conns) - max_connections
    if excess <= 0:
        return 0
    idle = [c for c in conns if not _busy(c)]
    idle.sort(key=lambda c: (first_seen or {}).get(c, 0.0))
    for c in idle[:excess]:
        _close(c)
    return max(excess - len(idle), 0)


async def reap(server, metrics_stop: asyncio.Event, max_connections: int) -> None:
    """Close connections that sent no request within HEADER_TIMEOUT, and idle ones beyond the cap."""
    first_seen: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
    while not metrics_stop.is_set():
        await asyncio.sleep(1.0)
        now = time.monotonic()
        for c in list(server.connections):
            seen = first_seen.setdefault(c, now)
            if not _busy(c) and getattr(c, "_request_count", 1) == 0 and now - seen > HEADER_TIMEOUT:
                _close(c)
        shed_idle(server, max_connections, first_seen)


class _JSONErrors(RequestHandler):
    """aiohttp's connection handler, with its own errors (a request line or header the parser refuses, a body over a
    limit) answered in OpenAI's JSON error shape instead of text/plain, and logged as the client's mistake (one INFO
    line), not as a server error with a traceback."""

    __slots__ = ()
    metrics = None  # set by serve()

    def log_exception(self, *args, **kw) -> None:
        exc = kw.get("exc_info")
        if isinstance(exc, (web.RequestPayloadError, HttpProcessingError, ConnectionResetError)):
            # After a 400 for a body that does not decode, aiohttp reads the rest of it and meets the same error.
            log.info("closed a connection whose request body could not be read: %s", payload_problem(exc))
            return
        super().log_exception(*args, **kw)

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None, message: str | None = None):
        if request.writer.output_size > 0:
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        if status >= 500:
            log.error("error handling a request from %s: %s", request.remote, f"{type(exc).__name__}: {exc}" if exc else message)
            text = "internal error"
        else:
            text = f"bad request: {getattr(exc, 'message', None) or message or (type(exc).__name__ if exc else 'malformed HTTP')}"
            log.info("refused a malformed request from %s (%d): %s", request.remote, status, text)
        code = "bad_request" if status < 500 else "internal_error"
        self.metrics.errors.labels(str(status)).inc()
        err_type = "invalid_request_error" if status < 500 else "server_error"
        resp = web.json_response(error_body(text, err_type=err_type, code=code), status=status)
        resp.force_close()
        return resp


class _Server(web.Server):
    __slots__ = ()

    def __call__(self) -> RequestHandler:
        return _JSONErrors(self, loop=self._loop, **self._kwargs)


async def serve(front, host: str, port: int, drain_seconds: float, watchdog, listen_fd: int | None = None) -> None:
    app = make_app(front)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, keepalive_timeout=KEEPALIVE_TIMEOUT, handler_cancellation=True)
    await runner.setup()
    _JSONErrors.metrics = front.metrics
    runner.server.__class__ = _Server  # each new connection's handler answers parser errors in JSON
    app["server"] = runner.server
    if listen_fd is not None:  # bound by the supervisor: it cannot be taken, and survives a restart of this process
        import socket

        site = web.SockSite(runner, socket.socket(fileno=listen_fd))
    else:
        site = web.TCPSite(runner, host, port, reuse_address=True, backlog=1024)
    await site.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    jobs = [front.pool.monitor(), front.queue.dispatcher(), reap(runner.server, stop, front.max_connections), _beat(watchdog)]
    if front.membership is not None:
        jobs.append(front.membership.run())
    tasks = [loop.create_task(t) for t in jobs]
    await stop.wait()
    # Drain: no new connections, no new requests; those in flight get until the deadline.
    front.terminating = True
    await site.stop()
    deadline = time.monotonic() + drain_seconds
    while app["active"] and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for task in list(app["active"]):
        task.cancel()  # streams end with an error event (completions.py), whole answers with a 503
    await asyncio.sleep(0.2)
    for t in tasks:
        t.cancel()
    front.backend.close()
    await runner.cleanup()


async def _beat(watchdog) -> None:
    while True:
        watchdog.beat()
        await asyncio.sleep(1.0)
