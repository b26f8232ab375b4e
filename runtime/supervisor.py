"""`disagg serve`: start the frontend and every worker as its own process, restart the ones that die, stop them all.

A worker that exits is reported, restarted with exponential back-off (0.5 s doubling to 10 s, reset after 30 s of
uptime) and counted; Ctrl-C or SIGTERM stops every child (SIGTERM, then SIGKILL after 5 s). Children also get
PR_SET_PDEATHSIG so that even a SIGKILLed supervisor leaves no orphans.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field

from .identity import RUN_SECRET_ENV, run_id
from .plan import RuntimePlan, WorkerSpec

READY_TIMEOUT = 60.0  # seconds for every process to answer /health


class PortTaken(Exception):
    """The frontend's port is held by another process (possibly another `disagg serve`)."""


@dataclass
class ServeOptions:
    engine: str = "mock"  # mock | vllm
    vllm_kv_cache_bytes: int = 256 * 2**20  # per engine, on CPU
    host: str = "127.0.0.1"
    port: int | None = None  # None: the Frontend section's port
    kv_transport: str = "nixl"
    timing: dict = field(default_factory=dict)
    kv_blocks: int = 8192
    arena_mb: int = 256
    prefill_concurrency: int = 1
    prefill_timeout: float = 10.0
    decode_timeout: float = 60.0
    fault_injection: bool = False
    log_dir: str | None = None
    kv_refusals: dict = field(default_factory=dict)  # reason -> the doctor's message: KV exchanges the decode side refuses


@dataclass
class Child:
    name: str
    role: str  # frontend | decode | prefill
    argv: list[str]
    url: str
    log_path: str
    proc: subprocess.Popen | None = None
    started: float = 0.0
    restarts: int = 0
    backoff: float = 0.5
    next_start: float = 0.0
    env: dict = field(default_factory=dict)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Supervisor:
    def __init__(self, plan: RuntimePlan, options: ServeOptions, say=print):
        self.plan = plan
        self.opt = options
        self.say = say  # the command line decides how to print
        self.run_dir = options.log_dir or tempfile.mkdtemp(prefix="disagg-serve-")
        os.makedirs(self.run_dir, exist_ok=True)
        self.children: list[Child] = []
        self.stopping = False
        self.frontend_url = ""
        self.pids_file: str | None = None
        self.secret = secrets.token_hex(32)
        self.run_id = run_id(self.secret)

    def build(self) -> None:
        plan_file = os.path.join(self.run_dir, "plan.json")
        with open(plan_file, "w", encoding="utf-8") as handle:
            handle.write(self.plan.to_json())
        specs = [WorkerSpec(f"decode-{i}", "decode", i, free_port()) for i in range(self.plan.decode_workers)]
        specs += [WorkerSpec(f"prefill-{i}", "prefill", i, free_port()) for i in range(self.plan.prefill_workers)]
        workers_file = os.path.join(self.run_dir, "workers.json")
        with open(workers_file, "w", encoding="utf-8") as handle:
            json.dump([asdict(s) for s in specs], handle)
        py = [sys.executable, "-m"]
        if self.opt.engine == "vllm":
            from .vllm_engine import engine_commands

            self.pids_file = os.path.join(self.run_dir, "pids.json")
            for s, argv, env, note in engine_commands(self.plan, specs, self.opt):
                self.children.append(Child(s.worker_id, s.role, argv, s.url, os.path.join(self.run_dir, f"{s.worker_id}.log"), env=env))
                if note:
                    self.say(note)
            specs = []
        for s in specs:
            argv = py + ["disagg.runtime.worker", "--plan-file", plan_file, "--worker-id", s.worker_id, "--role", s.role, "--port", str(s.port),
                         "--kv-transport", self.opt.kv_transport, "--timing", json.dumps(self.opt.timing), "--kv-blocks", str(self.opt.kv_blocks),
                         "--arena-mb", str(self.opt.arena_mb), "--prefill-concurrency", str(self.opt.prefill_concurrency)]
            if self.opt.fault_injection:
                argv.append("--fault-injection")
            if self.opt.kv_refusals:
                argv += ["--refuse-kv", json.dumps(self.opt.kv_refusals)]
            self.children.append(Child(s.worker_id, s.role, argv, s.url, os.path.join(self.run_dir, f"{s.worker_id}.log")))
        port = self.opt.port if self.opt.port is not None else self.plan.frontend_port
        if port == 0:
            port = free_port(self.opt.host)
        else:
            check_port_free(self.opt.host, port)
        argv = py + ["disagg.runtime.frontend", "--plan-file", plan_file, "--workers-file", workers_file, "--host", self.opt.host, "--port", str(port),
                     "--prefill-concurrency", str(self.opt.prefill_concurrency), "--prefill-timeout", str(self.opt.prefill_timeout),
                     "--decode-timeout", str(self.opt.decode_timeout)]
        if self.opt.fault_injection:
            argv.append("--fault-injection")
        if self.opt.engine == "vllm":
            argv += ["--engine", "vllm", "--model-dir", self.plan.model_path, "--pids-file", self.pids_file]
        host = "127.0.0.1" if self.opt.host in ("0.0.0.0", "") else self.opt.host
        self.frontend_url = f"http://{host}:{port}"
        self.children.append(Child("frontend", "frontend", argv, self.frontend_url, os.path.join(self.run_dir, "frontend.log")))

    def _spawn(self, c: Child) -> None:
        log = open(c.log_path, "ab")
        # Each child leads its own process group: vLLM's API server forks an EngineCore that outlives a SIGKILLed
        # parent (seen here: orphaned EngineCores slowed the next engines' start past any timeout), so restarts and
        # stops signal the whole group.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", RUN_SECRET_ENV: self.secret, **c.env}
        c.proc = subprocess.Popen(c.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                  start_new_session=True)
        log.close()
        c.started = time.monotonic()
        if self.pids_file:  # vLLM engines do not report their PID: publish it for the frontend's /workers
            pids = {x.url: x.proc.pid for x in self.children if x.proc is not None and x.role in ("decode", "prefill")}
            with open(self.pids_file, "w", encoding="utf-8") as handle:
                json.dump(pids, handle)

    def start(self, progress=None) -> None:
        """Spawn everything and wait until each process answers /health; `progress(child, ready)` reports each step."""
        for c in self.children:
            self._spawn(c)
            if progress:
                progress(c, False)
        timeout = READY_TIMEOUT * 5 if self.opt.engine == "vllm" else READY_TIMEOUT
        deadline = time.monotonic() + timeout
        pending = list(self.children)
        while pending:
            for c in list(pending):
                if c.proc.poll() is not None:
                    tail = _tail(c.log_path)
                    if "address already in use" in tail.lower():
                        raise PortTaken(f"{c.name}: {c.url} is already in use by another process")
                    raise RuntimeError(f"{c.name} exited with code {c.proc.returncode} while starting; its log: {c.log_path}\n{tail}")
                answer = _health(c.url + "/health")
                if answer is None:
                    continue
                ours = c.role == "frontend" or self.opt.engine == "mock"  # vLLM's own servers do not know our run
                if ours and answer.get("run_id") != self.run_id:
                    raise PortTaken(f"{c.url} answers for another server (run {answer.get('run_id') or 'unknown'}, not this one's {self.run_id}): "
                                    "its port is taken; stop that server or choose another --port (0 picks a free one)")
                pending.remove(c)
                if progress:
                    progress(c, True)
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {timeout:.0f} s: {', '.join(c.name for c in pending)}; logs in {self.run_dir}")
            time.sleep(0.05)

    def watch_once(self) -> None:
        """Restart children that died (with back-off); call this in a loop."""
        now = time.monotonic()
        for c in self.children:
            if self.stopping or c.proc is None:
                continue
            code = c.proc.poll()
            if code is None:
                if now - c.started > 30:
                    c.backoff = 0.5
                continue
            if c.next_start == 0.0:
                _signal_group(c.proc, signal.SIGKILL)  # whatever the dead process left behind
                c.next_start = now + c.backoff
                how = f"signal {-code}" if code < 0 else f"exit code {code}"
                self.say(f"{c.name} (pid {c.proc.pid}) died ({how}); restarting in {c.backoff:.1f} s (restart #{c.restarts + 1}); log: {c.log_path}")
            elif now >= c.next_start:
                c.restarts += 1
                c.next_start = 0.0
                c.backoff = min(c.backoff * 2, 10.0)
                self._spawn(c)
                self.say(f"{c.name} restarted as pid {c.proc.pid}")

    def stop(self) -> None:
        self.stopping = True
        for c in self.children:
            if c.proc is not None:
                _signal_group(c.proc, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for c in self.children:
            if c.proc is None:
                continue
            try:
                c.proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(c.proc, signal.SIGKILL)  # the group: engine processes a parent leaves behind
            if c.proc.poll() is None:
                c.proc.wait()

    def pids(self) -> dict[str, int]:
        return {c.name: c.proc.pid for c in self.children if c.proc is not None}


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def check_port_free(host: str, port: int) -> None:
    """Raise PortTaken when something already listens on host:port (a restarting process may still linger: the
    frontend's socket sets SO_REUSEADDR, and so does this check)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host or "0.0.0.0", port))
        except OSError as exc:
            raise PortTaken(f"port {port} on {host} is already in use ({exc.strerror}): stop what holds it or choose another --port (0 picks a free one)") from None


def _health(url: str) -> dict | None:
    """A process's /health answer (200 or 503), or None when nothing answers yet."""
    try:
        with urllib.request.urlopen(url, timeout=0.5) as r:
            body = r.read()
    except urllib.error.HTTPError as exc:
        if exc.code != 503:
            return None
        body = exc.read()
    except (urllib.error.URLError, OSError, ValueError):
        return None
    try:
        answer = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return answer if isinstance(answer, dict) else {}


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except OSError:
        return ""
