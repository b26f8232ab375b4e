"""The two stacks `bench_peer.py` compares, started on this machine (Dynamo 1.6.1 installed on first use, disagg from
this checkout), each process's CPU time from /proc, and the routing and cache counters each stack keeps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / ".bench"
DYNAMO = BENCH / "dynamo-venv"
DYNAMO_VERSION = "1.6.1"
DYNAMO_REQUIRES = ["aiohttp<4.0,>=3.14.3", "certifi>=2026.10.19", "kubernetes<33.0.0,>=32.0.1", "msgspec>=0.19.0", "prometheus-client<1.0,>=0.23.1",
                   "pyzmq>=26.0.0", "redis<9.0.0,>=6.2.0", "tqdm>=4.0.0", "transformers>=4.56.0", "typing-extensions>=4.10.0", "zstandard<1.0,>=0.23.0"]
CLK = os.sysconf("SC_CLK_TCK")


def ensure_dynamo() -> Path:
    py = DYNAMO / "bin" / "python"
    if py.exists() and subprocess.run([str(py), "-c", "import dynamo.frontend, dynamo.mocker"], capture_output=True).returncode == 0:
        return py
    print(f"installing ai-dynamo {DYNAMO_VERSION} into {DYNAMO} (once)...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(DYNAMO)], check=True)
    pip = [str(py), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--no-deps", f"ai-dynamo=={DYNAMO_VERSION}"], check=True)
    subprocess.run([*pip, f"ai-dynamo-runtime=={DYNAMO_VERSION}", *DYNAMO_REQUIRES], check=True)
    return py


def tiny_model(work: Path) -> Path:
    path = work / "tiny"
    subprocess.run([sys.executable, "-m", "disagg", "make-tiny-model", str(path), "--no-weights"], check=True, capture_output=True)
    return path


def kv_bytes_per_token(model: Path) -> int:
    """The model's KV size per token (K and V of every layer), what disagg's mock engine moves for each prompt token
    and what Dynamo's mocker is told for its transfer time (num_layers * 2 * num_kv_heads * head_dim * dtype bytes)."""
    cfg = json.loads((model / "config.json").read_text())
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    dtype = {"float32": 4, "float16": 2, "bfloat16": 2}[cfg.get("torch_dtype", "bfloat16")]
    return cfg["num_hidden_layers"] * 2 * cfg.get("num_key_value_heads", cfg["num_attention_heads"]) * head_dim * dtype


def disagg_config(work: Path, model: Path, max_model_len: int) -> Path:
    """seed-fixed.yaml with a context long enough for the longest prompt plus its output: its max-model-len of 4096
    made every ISL-8000 request a 400 context_length_exceeded (0 remote, all errors) on the disagg side only."""
    text = (ROOT / "examples" / "seed-fixed.yaml").read_text().replace("model: tiny", f"model: {model}")
    text = text.replace("max-model-len: 4096", f"max-model-len: {max(4096, max_model_len)}")
    text = text.replace("max-local-prefill-length: 10", "max-local-prefill-length: 10\n  max-prefill-queue-size: 1000000")
    path = work / "disagg.yaml"
    path.write_text(text)
    return path


class Stack:
    def __init__(self, name: str, side: str):
        self.name = name
        self.side = side  # "disagg" or "dynamo": which counters it keeps
        self.procs: list[subprocess.Popen] = []
        self.url = ""

    def spawn(self, argv: list[str], env: dict, log: Path) -> subprocess.Popen:
        p = subprocess.Popen(argv, env={**os.environ, **env}, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        return p

    def pids(self) -> list[int]:
        """Every live process of the stack (the ones it started and their descendants)."""
        out, todo = [], [p.pid for p in self.procs]
        while todo:
            pid = todo.pop()
            out.append(pid)
            try:
                with open(f"/proc/{pid}/task/{pid}/children") as handle:
                    todo.extend(int(c) for c in handle.read().split())
            except OSError:
                pass
        return out

    def cpu_seconds(self) -> dict[int, float]:
        out = {}
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                out[pid] = (int(fields[11]) + int(fields[12])) / CLK
            except (OSError, IndexError, ValueError):
                pass
        return out

    @staticmethod
    def label(pid: int) -> str:
        """A process's part in its stack, from its command line: the module it runs and its worker id or mode."""
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                argv = handle.read().decode(errors="replace").split("\0")
        except OSError:
            return str(pid)
        module = argv[argv.index("-m") + 1].rsplit(".", 1)[-1] if "-m" in argv[:-1] else Path(argv[0]).name
        for flag in ("--worker-id", "--disaggregation-mode"):
            if flag in argv[:-1]:
                return f"{module} {argv[argv.index(flag) + 1]}"
        return module

    def stop(self) -> None:
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def wait_ready(url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    body = json.dumps({"model": "tiny", "prompt": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20], "max_tokens": 2}).encode()
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not become ready")


def start_dynamo(py: Path, model: Path, work: Path, port: int, kv_bandwidth: float = 0.0, name: str = "Dynamo 1.6.1") -> Stack:
    """`kv_bandwidth` 0 means its mocker spends no time on KV; otherwise it waits the KV size / that many GB/s."""
    s = Stack(name, "dynamo")
    kv = work / f"dyn-kv-{port}"
    kv.mkdir(exist_ok=True)
    env = {"DYN_DISCOVERY_BACKEND": "file", "DYN_FILE_KV": str(kv), "DYN_REQUEST_PLANE": "tcp", "DYN_EVENT_PLANE": "zmq", "DYN_TCP_RPC_HOST": "127.0.0.1",
           "DYN_EVENT_PLANE_HOST": "127.0.0.1", "DYN_SYSTEM_HOST": "127.0.0.1", "DYN_TCP_RESPONSE_STREAM_HOST": "127.0.0.1"}
    for mode in ("prefill", "decode"):
        s.spawn([str(py), "-m", "dynamo.mocker", "--model-path", str(model), "--model-name", "tiny", "--disaggregation-mode", mode,
                 "--speedup-ratio", "1e6", "--kv-transfer-bandwidth", str(kv_bandwidth),
                 "--kv-bytes-per-token", str(kv_bytes_per_token(model))], env, work / f"dynamo-{port}-{mode}.log")
    s.spawn([str(py), "-m", "dynamo.frontend", "--http-host", "127.0.0.1", "--http-port", str(port), "--router-mode", "kv"], env, work / f"dynamo-{port}-frontend.log")
    s.url = f"http://127.0.0.1:{port}"
    wait_ready(s.url)
    return s


def start_disagg(config: Path, work: Path, port: int) -> Stack:
    s = Stack("disagg", "disagg")
    p = s.spawn([sys.executable, "-m", "disagg", "serve", str(config), "--port", str(port), "--mock-timing", "zero", "--prefill-concurrency", "128",
                 "--log-dir", str(work / "disagg-logs")], {}, work / "disagg-serve.log")
    s.url = f"http://127.0.0.1:{port}"
    wait_ready(s.url)
    assert p.poll() is None
    return s


def nixl_bandwidth(nbytes: int) -> float:
    """GB/s of one NIXL READ of `nbytes` between two processes here (what our KV path can at best reach)."""
    r = subprocess.run([sys.executable, "-m", "disagg.runtime.nixl_probe", "--bytes", str(nbytes)], capture_output=True, text=True, timeout=120)
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("DISAGG_PROBE ")), None)
    result = json.loads(line.removeprefix("DISAGG_PROBE ")) if line else {"error": r.stderr[-300:]}
    if result.get("error"):
        raise SystemExit(f"--equal-kv needs a NIXL transfer here: {result['error']}")
    return float(result["gbytes_per_s"])


# The series each side must expose for its run to count: without them "0 cached tokens" would be a missing counter.
COUNTERS = {"disagg": ["disagg_requests_total", "disagg_prompt_tokens_total", "disagg_kv_transfer_bytes_total"],
            "dynamo": ["dynamo_frontend_router_admission_received_total", "dynamo_frontend_cached_tokens_sum"]}
COUNTED = {n for names in COUNTERS.values() for n in names}


def counters(url: str, side: str) -> dict:
    """The routing and cache counters each side keeps: requests prefilled remotely (or locally), and prompt tokens
    served from a prefix cache, from the stack's own /metrics."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {"remote": 0.0, "local": 0.0, "cached_tokens": 0.0, "kv_bytes": 0.0}
    seen = set()
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        series, _, value = line.rpartition(" ")
        try:
            v = float(value)
        except ValueError:
            continue
        name = series.split("{", 1)[0]
        if name in COUNTED:
            seen.add(name)
        if name == "disagg_requests_total":
            out["remote" if 'route="remote"' in series else "local"] += v
        elif name == "disagg_prompt_tokens_total" and 'source="prefix_cache"' in series:
            out["cached_tokens"] += v
        elif name == "dynamo_frontend_router_admission_received_total" and 'worker_type="prefill"' in series:
            out["remote"] += v
        elif name == "dynamo_frontend_cached_tokens_sum":  # prompt tokens the frontend saw served from a worker's prefix cache
            out["cached_tokens"] += v
        elif name == "disagg_kv_transfer_bytes_total":
            out["kv_bytes"] += v
    out["missing"] = [n for n in COUNTERS[side] if n not in seen]
    return out
