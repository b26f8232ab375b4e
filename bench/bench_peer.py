"""disagg's runtime side by side with NVIDIA Dynamo 1.6.1 on this machine, one command:

    sudo python bench/bench_peer.py [--requests 400] [--rounds 3] [--concurrency 1,8,32,128]

Both stacks serve the same tiny model (made here) disaggregated, with engine costs at zero, so what is measured is the
serving machinery: HTTP frontend, routing, the prefill hop, KV handling, token streaming.
- Dynamo 1.6.1: `dynamo.frontend --router-mode kv` and two `dynamo.mocker` (prefill and decode) with
  `--speedup-ratio 1e6 --kv-transfer-bandwidth 0`, discovery through files, TCP request plane, as ../shared/DOMAIN.md
  §5 describes. Its mocker moves no KV bytes.
- disagg: `disagg serve --mock-timing zero --prefill-concurrency 128`, a queue large enough that every request
  prefills remotely; its mock engine moves the tiny model's real KV size over NIXL (1 KiB per token) and checks it.
Dynamo is installed into `.bench/dynamo-venv` on first use (`pip install --no-deps ai-dynamo==1.6.1`, then its
requirements but `aisimulate`, a stub that downloads from a host this machine cannot reach). The whole bench runs in
a private network namespace it creates (Dynamo's mocker binds ZMQ sockets on every interface). One load generator
drives both, interleaved round by round, with 200-token prompts (token ids) and 10 output tokens, streaming or not;
it reports requests/s, p50/p99 latency, time to first token (streaming), and CPU time per 1,000 requests of every
process of each stack (from /proc), as disagg/Dynamo ratios of medians over rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / ".bench"
DYNAMO = BENCH / "dynamo-venv"
DYNAMO_VERSION = "1.6.1"
DYNAMO_REQUIRES = ["aiohttp<4.0,>=3.14.3", "certifi>=2026.10.19", "kubernetes<33.0.0,>=32.0.1", "msgspec>=0.19.0", "prometheus-client<1.0,>=0.23.1",
                   "pyzmq>=26.0.0", "redis<9.0.0,>=6.2.0", "tqdm>=4.0.0", "transformers>=4.56.0", "typing-extensions>=4.10.0", "zstandard<1.0,>=0.23.0"]
ISL, OSL = 200, 10
CLK = os.sysconf("SC_CLK_TCK")


# ---- set-up ----------------------------------------------------------------------------------------------------


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


def disagg_config(work: Path, model: Path) -> Path:
    text = (ROOT / "examples" / "seed-fixed.yaml").read_text().replace("model: tiny", f"model: {model}")
    text = text.replace("max-local-prefill-length: 10", "max-local-prefill-length: 10\n  max-prefill-queue-size: 1000000")
    path = work / "disagg.yaml"
    path.write_text(text)
    return path


class Stack:
    def __init__(self, name: str):
        self.name = name
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


def start_dynamo(py: Path, model: Path, work: Path, port: int) -> Stack:
    s = Stack("Dynamo 1.6.1")
    kv = work / "dyn-kv"
    kv.mkdir(exist_ok=True)
    env = {"DYN_DISCOVERY_BACKEND": "file", "DYN_FILE_KV": str(kv), "DYN_REQUEST_PLANE": "tcp", "DYN_EVENT_PLANE": "zmq", "DYN_TCP_RPC_HOST": "127.0.0.1",
           "DYN_EVENT_PLANE_HOST": "127.0.0.1", "DYN_SYSTEM_HOST": "127.0.0.1", "DYN_TCP_RESPONSE_STREAM_HOST": "127.0.0.1"}
    for mode in ("prefill", "decode"):
        s.spawn([str(py), "-m", "dynamo.mocker", "--model-path", str(model), "--model-name", "tiny", "--disaggregation-mode", mode,
                 "--speedup-ratio", "1e6", "--kv-transfer-bandwidth", "0"], env, work / f"dynamo-{mode}.log")
    s.spawn([str(py), "-m", "dynamo.frontend", "--http-host", "127.0.0.1", "--http-port", str(port), "--router-mode", "kv"], env, work / "dynamo-frontend.log")
    s.url = f"http://127.0.0.1:{port}"
    wait_ready(s.url)
    return s


def start_disagg(config: Path, work: Path, port: int) -> Stack:
    s = Stack("disagg")
    p = s.spawn([sys.executable, "-m", "disagg", "serve", str(config), "--port", str(port), "--mock-timing", "zero", "--prefill-concurrency", "128",
                 "--log-dir", str(work / "disagg-logs")], {}, work / "disagg-serve.log")
    s.url = f"http://127.0.0.1:{port}"
    wait_ready(s.url)
    assert p.poll() is None
    return s


# ---- load ------------------------------------------------------------------------------------------------------


async def drive(url: str, concurrency: int, requests: int, stream: bool) -> dict:
    import aiohttp

    lat, ttft, errors, tokens = [], [], 0, 0
    sent = 0

    async def client(session, k: int) -> None:
        nonlocal sent, errors, tokens
        while sent < requests:
            i = sent
            sent += 1
            prompt = [(7 * i + 13 * j + k) % 250 + 1 for j in range(ISL)]  # distinct per request: no prefix hits
            body = {"model": "tiny", "prompt": prompt, "max_tokens": OSL, "stream": stream}
            if stream:
                body["stream_options"] = {"include_usage": True}
            t0 = time.perf_counter()
            try:
                async with session.post(url + "/v1/completions", json=body) as r:
                    if stream:
                        first = None
                        async for line in r.content:
                            if first is None and line.startswith(b"data: {") and b'"text":""' not in line.replace(b" ", b""):
                                first = time.perf_counter()
                        if first is not None:
                            ttft.append(first - t0)
                    else:
                        data = await r.json(content_type=None)
                        tokens += (data.get("usage") or {}).get("completion_tokens", 0)
                    if r.status != 200:
                        errors += 1
            except aiohttp.ClientError:
                errors += 1
            lat.append(time.perf_counter() - t0)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=60)) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(session, k) for k in range(concurrency)))
        wall = time.perf_counter() - t0
    lat.sort()
    ttft.sort()
    return {"rps": len(lat) / wall, "p50": lat[len(lat) // 2], "p99": lat[min(len(lat) - 1, int(0.99 * len(lat)))], "errors": errors,
            "ttft": ttft[len(ttft) // 2] if ttft else None, "tokens": tokens / len(lat) if lat and not stream else None}


def measure(stack: Stack, concurrency: int, requests: int, stream: bool) -> dict:
    before = stack.cpu_seconds()
    result = asyncio.run(drive(stack.url, concurrency, requests, stream))
    after = stack.cpu_seconds()
    result["cpu_ms_per_request"] = sum(after[p] - before.get(p, 0.0) for p in after) / requests * 1e3
    return result


# ---- main ------------------------------------------------------------------------------------------------------


def in_namespace() -> None:
    """Re-run this script in a private network namespace with loopback up (needs root)."""
    if os.environ.get("DISAGG_BENCH_NETNS") == "1":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return
    if os.geteuid() != 0 or not shutil.which("unshare"):
        raise SystemExit("run as root: the bench makes a private network namespace (unshare -n) for both stacks")
    env = {**os.environ, "DISAGG_BENCH_NETNS": "1"}
    raise SystemExit(subprocess.run(["unshare", "-n", sys.executable, *sys.argv], env=env).returncode)


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=400, help="requests per measurement (default 400)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per setting (default 3)")
    ap.add_argument("--concurrency", default="1,8,32,128")
    args = ap.parse_args()
    py = ensure_dynamo()  # before the namespace: it may need the package index
    in_namespace()
    work = Path(tempfile.mkdtemp(prefix="disagg-peer-"))
    model = tiny_model(work)
    stacks = []
    try:
        stacks = [start_disagg(disagg_config(work, model), work, 18000), start_dynamo(py, model, work, 18001)]
        rows = []
        for stream in (False, True):
            for c in [int(x) for x in args.concurrency.split(",")]:
                n = args.requests if c > 1 else max(args.requests // 4, 50)
                res: dict[str, list[dict]] = {s.name: [] for s in stacks}
                for _ in range(args.rounds):
                    for s in stacks:  # interleaved: both see the same machine noise
                        asyncio.run(drive(s.url, c, min(50, n), stream))  # warm-up
                        res[s.name].append(measure(s, c, n, stream))
                rows.append((stream, c, res))
                print(f"done: {'streaming' if stream else 'non-streaming'} c={c}", file=sys.stderr)
    finally:
        for s in stacks:
            s.stop()
    med = lambda rs, k: statistics.median([r[k] for r in rs if r[k] is not None]) if any(r[k] is not None for r in rs) else None  # noqa: E731
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}")
    print(f"{args.rounds} interleaved rounds, {args.requests} requests each (fewer at concurrency 1), ISL {ISL}, OSL {OSL}; medians over rounds")
    print()
    print("| mode | concurrency | req/s disagg | req/s Dynamo | **ratio** | p50 ms disagg / Dynamo | p99 ms disagg / Dynamo | TTFT ms disagg / Dynamo | CPU ms/req disagg | CPU ms/req Dynamo | **CPU ratio** | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for stream, c, res in rows:
        d, y = res["disagg"], res["Dynamo 1.6.1"]
        ttft = f"{med(d, 'ttft') * 1e3:.1f} / {med(y, 'ttft') * 1e3:.1f}" if stream and med(d, "ttft") and med(y, "ttft") else "-"
        print(f"| {'stream' if stream else 'whole'} | {c} | {med(d, 'rps'):.0f} | {med(y, 'rps'):.0f} | **{ratio(med(d, 'rps'), med(y, 'rps'))}** | "
              f"{med(d, 'p50') * 1e3:.1f} / {med(y, 'p50') * 1e3:.1f} | {med(d, 'p99') * 1e3:.1f} / {med(y, 'p99') * 1e3:.1f} | {ttft} | "
              f"{med(d, 'cpu_ms_per_request'):.2f} | {med(y, 'cpu_ms_per_request'):.2f} | **{ratio(med(d, 'cpu_ms_per_request'), med(y, 'cpu_ms_per_request'))}** | "
              f"{sum(r['errors'] for r in d)} / {sum(r['errors'] for r in y)} |")
    tokens = [r["tokens"] for rs in (rows[0][2]["Dynamo 1.6.1"],) for r in rs if r["tokens"] is not None]
    if tokens:
        print(f"\n(Dynamo answered {statistics.median(tokens):.1f} output tokens per request on average; disagg always {OSL}.)")


if __name__ == "__main__":
    main()
