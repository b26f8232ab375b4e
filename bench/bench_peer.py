"""disagg's runtime side by side with NVIDIA Dynamo 1.6.1 on this machine, measured so that it cannot flatter us:

    sudo python bench/bench_peer.py [--rounds 5] [--concurrency 1,8,32,128] [--isl 200] [--osl 10] [--modes whole,stream]
                                    [--new-connection] [--equal-kv]

Both stacks serve the same tiny model (made here) disaggregated, with engine costs at zero, so what is measured is the
serving machinery: HTTP frontend, routing, the prefill hop, KV handling, token streaming.
- Dynamo 1.6.1: `dynamo.frontend --router-mode kv` and two `dynamo.mocker` (prefill and decode) with
  `--speedup-ratio 1e6 --kv-transfer-bandwidth 0`, discovery through files, TCP request plane, as ../shared/DOMAIN.md
  §5 describes. Its mocker moves no KV bytes; `--equal-kv` adds a Dynamo whose mocker is given the KV bandwidth
  our NIXL READ reaches on this machine (`python -m disagg.runtime.nixl_probe`) and the model's KV bytes per token,
  so long prompts cost both sides the same transfer time. The mocker spends it waiting, not copying: it adds latency
  (seen at concurrency 1) but no CPU, so at higher concurrency it hides behind other requests.
- disagg: `disagg serve --mock-timing zero --prefill-concurrency 128`, a queue large enough that every request
  prefills remotely; its mock engine moves the tiny model's real KV size over NIXL and checks it.
Dynamo is installed into `.bench/dynamo-venv` on first use (`pip install --no-deps ai-dynamo==1.6.1`, then its
requirements but `aisimulate`, a stub that downloads from a host this machine cannot reach). The whole bench runs in
a private network namespace it creates (Dynamo's mocker binds ZMQ sockets on every interface).

What keeps it honest (issue 23 found the earlier version flattering us four ways):
- every request has its own random prompt, salted per round, stack and setting, built before the clock starts: no
  prefix-cache hit on either side, and the load generator's cost is not inside the measurement;
- the order of the stacks alternates every round; a result is the median of the per-round ratios with [min-max];
- both sides' own counters are read before and after each measurement: every request must have been prefilled
  remotely (disagg `route="remote"`, Dynamo prefill admissions) with 0 cached prompt tokens, or the row says VOID;
- every response must carry `--osl` completion tokens, no request may fail, and disagg's
  `disagg_kv_transfer_bytes_total` must grow by the prompts' full KV size (the model's bytes per token); a counter a
  side should keep but does not show voids the row rather than passing as 0;
- time to first token is printed only where both sides stream more than one token event (an event with a choice)
  per response: Dynamo's mocker output decodes to empty text and, at zero engine cost, comes as one event, so its
  "first token" is its last; otherwise the row says why;
- `--new-connection` opens a connection per request (a reused connection met Dynamo's ~40 ms delayed-ACK stall at
  concurrency 1).
CPU time of every process of each stack comes from /proc. Making the tiny model needs `tokenizers` in the
interpreter that runs the bench (`pip install tokenizers`, or the vllm extra).
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
VOCAB = 250  # token ids the tiny model takes (make-tiny-model)
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


# ---- load ------------------------------------------------------------------------------------------------------


def bodies(salt: str, n: int, isl: int, osl: int, stream: bool) -> list[bytes]:
    """`n` requests, each with its own random prompt (token ids), made before the clock starts."""
    import random

    rng = random.Random(salt)
    out = []
    for _ in range(n):
        body = {"model": "tiny", "prompt": [rng.randrange(1, VOCAB) for _ in range(isl)], "max_tokens": osl, "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        out.append(json.dumps(body).encode())
    return out


async def drive(url: str, concurrency: int, requests: list[bytes], stream: bool, new_connection: bool) -> dict:
    import aiohttp

    lat, ttft, events, tokens, errors = [], [], [], [], 0
    queue = iter(requests)

    async def client(session) -> None:
        nonlocal errors
        for body in queue:
            t0 = time.perf_counter()
            try:
                async with session.post(url + "/v1/completions", data=body, headers={"Content-Type": "application/json"}) as r:
                    if stream:
                        # A token event is one whose `choices` is not empty (the usage-only event at the end is
                        # not one). Dynamo's mocker tokens decode to empty text, so an event is not told apart by
                        # its text: the first token event is the first with any choice, and the events are counted.
                        first, n, data = None, 0, {}
                        async for line in r.content:
                            if line.startswith(b"data: {"):
                                compact = line.replace(b" ", b"")
                                if b'"choices":[]' not in compact:
                                    n += 1
                                    if first is None:
                                        first = time.perf_counter()
                                if b'"usage":{' in compact:
                                    data = json.loads(line[6:])
                        events.append(n)
                        if first is not None:
                            ttft.append(first - t0)
                    else:
                        data = await r.json(content_type=None)
                    tokens.append((data.get("usage") or {}).get("completion_tokens", 0))
                    if r.status != 200:
                        errors += 1
                        if errors == 1:  # say why, once: a run of silent errors hid a too-small max-model-len
                            print(f"{url}: HTTP {r.status}: {str(data)[:300] if not stream else '(stream)'}", file=sys.stderr)
            except aiohttp.ClientError:
                errors += 1
            lat.append(time.perf_counter() - t0)

    connector = aiohttp.TCPConnector(limit=0, force_close=new_connection)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    lat.sort()
    ttft.sort()
    return {"rps": len(lat) / wall, "p50": lat[len(lat) // 2], "p99": lat[min(len(lat) - 1, int(0.99 * len(lat)))], "errors": errors,
            "ttft": ttft[len(ttft) // 2] if ttft else None, "events": statistics.median(events) if events else None,
            "tokens": tokens}


def measure(stack: Stack, concurrency: int, requests: list[bytes], stream: bool, new_connection: bool) -> dict:
    seen = counters(stack.url, stack.side)
    before = stack.cpu_seconds()
    result = asyncio.run(drive(stack.url, concurrency, requests, stream, new_connection))
    after = stack.cpu_seconds()
    now = counters(stack.url, stack.side)
    result["cpu_ms_per_request"] = sum(after[p] - before.get(p, 0.0) for p in after) / len(requests) * 1e3
    by: dict[str, float] = {}
    for p in after:
        by[Stack.label(p)] = by.get(Stack.label(p), 0.0) + (after[p] - before.get(p, 0.0)) / len(requests) * 1e3
    result["cpu_by_process"] = by
    result["remote"] = now["remote"] - seen["remote"]
    result["cached_tokens"] = now["cached_tokens"] - seen["cached_tokens"]
    result["kv_bytes"] = now["kv_bytes"] - seen["kv_bytes"]
    result["missing"] = now["missing"]
    result["n"] = len(requests)
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


def spread(ours: list[dict], theirs: list[dict], key: str) -> str:
    """The median of the per-round ratios ours/theirs, with [min-max]."""
    rs = sorted(a[key] / b[key] for a, b in zip(ours, theirs) if a[key] and b[key])
    if not rs:
        return "-"
    return f"{statistics.median(rs):.2f} [{rs[0]:.2f}-{rs[-1]:.2f}]"


def valid(rs: list[dict], osl: int, kv_per_request: int | None) -> str:
    """Why the rows of one side do not count: a counter it should keep is missing, not every request was prefilled
    remotely, prompt tokens came from a prefix cache, a request failed or did not get `osl` tokens, or (disagg) fewer
    KV bytes moved than the prompts' KV size."""
    bad = [f"no {m}" for r in rs for m in r["missing"]]
    bad += [f"{int(r['remote'])}/{r['n']} remote" for r in rs if r["remote"] < r["n"]]
    bad += [f"{int(r['cached_tokens'])} cached tokens" for r in rs if r["cached_tokens"] > 0]
    bad += [f"{r['errors']} errors" for r in rs if r["errors"]]
    bad += [f"{sum(t != osl for t in r['tokens'])} responses without {osl} tokens" for r in rs if any(t != osl for t in r["tokens"])]
    if kv_per_request:
        bad += [f"KV {r['kv_bytes'] / r['n']:.0f} of {kv_per_request} bytes/request" for r in rs if r["kv_bytes"] < r["n"] * kv_per_request]
    return "VOID: " + ", ".join(sorted(set(bad))) if bad else "ok"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=300, help="requests per measurement (default 300; a quarter at concurrency 1)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds per setting, order alternating (default 5)")
    ap.add_argument("--concurrency", default="1,8,32,128")
    ap.add_argument("--isl", default="200", help="prompt lengths in tokens, comma-separated (e.g. 100,1000,8000)")
    ap.add_argument("--osl", type=int, default=10, help="output tokens per request (default 10)")
    ap.add_argument("--modes", default="whole,stream", help="whole (non-streaming) and/or stream")
    ap.add_argument("--new-connection", action="store_true", help="a new TCP connection per request")
    ap.add_argument("--equal-kv", action="store_true", help="add a Dynamo whose mocker moves KV at the bandwidth our NIXL reaches here")
    ap.add_argument("--raw", type=Path, help="also write every round's measurements here (JSON)")
    args = ap.parse_args()
    py = ensure_dynamo()  # before the namespace: it may need the package index
    in_namespace()
    work = Path(tempfile.mkdtemp(prefix="disagg-peer-"))
    load = [os.getloadavg()]
    model = tiny_model(work)
    isls = [int(x) for x in args.isl.split(",")]
    stacks: list[Stack] = []
    try:
        stacks = [start_disagg(disagg_config(work, model, max(isls) + args.osl), work, 18000), start_dynamo(py, model, work, 18001)]
        if args.equal_kv:
            size = max(isls) * kv_bytes_per_token(model)
            bw = nixl_bandwidth(size)
            print(f"NIXL READ here: {bw:.2f} GB/s for {size} bytes: given to the equal-KV Dynamo", file=sys.stderr)
            stacks.append(start_dynamo(py, model, work, 18002, kv_bandwidth=bw, name=f"Dynamo 1.6.1 kv {bw:.1f} GB/s"))
        rows = []
        for isl in isls:
            for stream in [m == "stream" for m in args.modes.split(",")]:
                for c in [int(x) for x in args.concurrency.split(",")]:
                    n = args.requests if c > 1 else max(args.requests // 4, 50)
                    res: dict[str, list[dict]] = {s.name: [] for s in stacks}
                    for rnd in range(args.rounds):
                        order = stacks if rnd % 2 == 0 else stacks[::-1]  # alternate who goes first
                        for s in order:
                            salt = f"{isl}-{stream}-{c}-{rnd}-{s.name}"
                            asyncio.run(drive(s.url, c, bodies("warm-" + salt, min(30, n), isl, args.osl, stream), stream, args.new_connection))
                            res[s.name].append(measure(s, c, bodies(salt, n, isl, args.osl, stream), stream, args.new_connection))
                    rows.append((isl, stream, c, res))
                    print(f"done: ISL {isl} {'streaming' if stream else 'non-streaming'} c={c}", file=sys.stderr)
    finally:
        for s in stacks:
            s.stop()
    load.append(os.getloadavg())
    if args.raw:
        args.raw.write_text(json.dumps({"argv": sys.argv, "load": load, "rows": rows}, indent=1))
    print(f"load average (1/5/15 min) before {'/'.join(f'{x:.2f}' for x in load[0])}, after {'/'.join(f'{x:.2f}' for x in load[1])}")
    report(args, rows, [s.name for s in stacks], kv_bytes_per_token(model))


def report(args, rows, names: list[str], bpt: int) -> None:
    med = lambda rs, k: statistics.median([r[k] for r in rs if r[k] is not None]) if any(r[k] is not None for r in rs) else None  # noqa: E731
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}")
    print(f"{args.rounds} rounds (order alternating), {args.requests} requests each (a quarter at concurrency 1), OSL {args.osl}, "
          f"{'a new connection per request' if args.new_connection else 'connections reused'}; ratio = median of per-round ratios [min-max]")
    for peer in names[1:]:
        print(f"\n### disagg / {peer}\n")
        print("| ISL | mode | c | req/s disagg | req/s peer | **req/s ratio** | p50 ms disagg / peer | TTFT ms disagg / peer | CPU ms/req disagg / peer | **CPU ratio** | counters disagg; peer | errors |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for isl, stream, c, res in rows:
            d, y = res["disagg"], res[peer]
            if not stream:
                ttft = "-"
            elif (med(d, "events") or 0) > 1 and (med(y, "events") or 0) > 1 and med(d, "ttft") and med(y, "ttft"):
                ttft = f"{med(d, 'ttft') * 1e3:.1f} / {med(y, 'ttft') * 1e3:.1f}"
            else:
                ttft = f"n/a: events per response {med(d, 'events')} / {med(y, 'events')}"
            print(f"| {isl} | {'stream' if stream else 'whole'} | {c} | {med(d, 'rps'):.0f} | {med(y, 'rps'):.0f} | **{spread(d, y, 'rps')}** | "
                  f"{med(d, 'p50') * 1e3:.1f} / {med(y, 'p50') * 1e3:.1f} | {ttft} | {med(d, 'cpu_ms_per_request'):.2f} / {med(y, 'cpu_ms_per_request'):.2f} | "
                  f"**{spread(d, y, 'cpu_ms_per_request')}** | {valid(d, args.osl, isl * bpt)}; {valid(y, args.osl, None)} | {sum(r['errors'] for r in d)} / {sum(r['errors'] for r in y)} |")
    print("\nCPU ms per request by process (median over rounds):\n")
    for isl, stream, c, res in rows:
        parts = []
        for name, rs in res.items():
            labels = sorted({k for r in rs for k in r["cpu_by_process"]})
            parts.append(f"{name}: " + ", ".join(f"{k} {statistics.median(r['cpu_by_process'].get(k, 0.0) for r in rs):.2f}" for k in labels))
        print(f"- ISL {isl} {'stream' if stream else 'whole'} c={c}: " + "; ".join(parts))


if __name__ == "__main__":
    main()
