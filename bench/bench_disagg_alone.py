"""disagg alone, real worker processes, with bench_peer.py's own load generator and counters (no Dynamo, no network
namespace, no root): for before/after pairs of a runtime change on a shared machine.

    python bench/bench_disagg_alone.py [--isl 8000] [--concurrency 8] [--requests 300] [--rounds 3]

Each round sends `--requests` non-streamed requests, each with its own random prompt of `--isl` token ids (made before
the clock starts), and prints requests/s, p50, and CPU ms per request by process (from /proc). A round is VOID unless
every request was prefilled remotely, none had cached tokens, none failed, and `disagg_kv_transfer_bytes_total` grew
by the prompts' full KV size. To compare two trees, run each tree's copy of this file in turn (interleaved).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_peer as bp  # noqa: E402

from disagg.runtime.ports import free_port  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--isl", type=int, default=8000)
    ap.add_argument("--osl", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="disagg-alone-"))
    model = bp.tiny_model(work)
    per_token = bp.kv_bytes_per_token(model)
    stack = bp.start_disagg(bp.disagg_config(work, model, args.isl + args.osl + 64), work, free_port())
    try:
        bp.measure(stack, args.concurrency, bp.bodies("warm-up", 50, args.isl, args.osl, False), False, False)
        for r in range(args.rounds):
            res = bp.measure(stack, args.concurrency, bp.bodies(f"round-{r}-{os.getpid()}", args.requests, args.isl, args.osl, False), False, False)
            ok = (res["errors"] == 0 and res["remote"] == args.requests and res["cached_tokens"] == 0 and not res["missing"]
                  and res["kv_bytes"] == args.requests * args.isl * per_token and all(t == args.osl for t in res["tokens"]))
            by = ", ".join(f"{name.removeprefix('worker ')} {ms:.2f}" for name, ms in sorted(res["cpu_by_process"].items()) if ms >= 0.005)
            print(f"round {r}: {'ok' if ok else 'VOID'}  {res['rps']:.0f} req/s  p50 {res['p50'] * 1e3:.1f} ms  "
                  f"CPU {res['cpu_ms_per_request']:.2f} ms/req ({by})  load {os.getloadavg()[0]:.2f}", flush=True)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
