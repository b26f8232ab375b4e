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
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from peer_load import bodies, drive, measure
from peer_stacks import Stack, disagg_config, ensure_dynamo, kv_bytes_per_token, nixl_bandwidth, start_disagg, start_dynamo, tiny_model


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
