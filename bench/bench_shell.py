"""Shell reader speed: a ~1 MB launch script made of many realistic blocks, against a YAML manifest of the same size.

    python bench/bench_shell.py [--size-kb 1024] [--runs 3] [--only shell|yaml] [--profile]

Each block is one profile of a `case "$PROFILE"` and holds what launch scripts hold: variables with defaults,
arithmetic, a function per role, a `case` on the role, a C-style loop, `eval` of `env ... $CMD`, comments. The YAML
is one file of Deployments (every prefill pairs with every decode in a file, so its pair count grows as the square). Times `lint_text` (read,
pair, every static rule) in this process, median of --runs; --profile prints the top of cProfile for the script.
The goal (issue 19): a 1 MB script in under 1 s. CPU time is printed beside wall time because a shared machine's
wall time says more about its neighbours than about the reader.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time

# One profile of a launcher that holds many (model sizes, clusters): `case "$PROFILE"` picks one per run, and the
# script is started once per role (`case "$ROLE"`), so each profile has one prefill/decode pair.
BLOCK = r"""
  p{i})
    # ---- profile {i}: one prefill and one decode node -----------------------------------------------------------
    MODEL=${{MODEL:-Qwen/Qwen3-0.6B}}
    TP=2
    PP=1
    GPUS=$((TP*PP))
    PORT=$((8100 + {i}))
    start_prefill_{i}() {{
      local port=$1
      echo "starting prefill {i} on $port"
      CUDA_VISIBLE_DEVICES=0,1 nohup vllm serve "$MODEL" --port "$port" --tensor-parallel-size "$TP" \
        --block-size 16 --max-model-len 8192 \
        --kv-transfer-config '{{"kv_connector":"NixlConnector","kv_role":"kv_producer"}}' > prefill_{i}.log 2>&1 &
    }}
    start_decode_{i}() {{
      local port=$1
      CMD="vllm serve $MODEL --port $port --tensor-parallel-size $TP --block-size 16"
      CMD="$CMD --kv-transfer-config '{{\"kv_connector\":\"NixlConnector\",\"kv_role\":\"kv_consumer\"}}'"
      eval "env VLLM_NIXL_SIDE_CHANNEL_PORT=$((5600 + {i})) $CMD" > decode_{i}.log 2>&1 &
    }}
    case "$ROLE" in
      prefill) start_prefill_{i} "$PORT" ;;
      decode) start_decode_{i} "$((PORT + 1000))" ;;
    esac
    for ((n = 0; n < 2; n++)); do
      echo "waiting for node $n of profile {i}"
      curl -s "http://localhost:$((PORT + n))/health" || sleep 1
    done
    ;;
"""
HEAD = "#!/bin/bash\nset -euo pipefail\nROLE=$1\nPROFILE=${2:-p0}\ncase \"$PROFILE\" in\n"
TAIL = "  *) echo \"unknown profile $PROFILE\" >&2; exit 1 ;;\nesac\nwait\n"


def script(size: int) -> str:
    out, i = [HEAD], 0
    total = len(HEAD) + len(TAIL)
    while total < size:
        b = BLOCK.format(i=i)
        out.append(b)
        total += len(b)
        i += 1
    return "".join(out) + TAIL


YAML_DOC = """---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: vllm-{role}-{i}, labels: {{app: pool-{i}}}}}
spec:
  replicas: 1
  template:
    metadata: {{labels: {{app: pool-{i}}}}}
    spec:
      containers:
        - name: vllm
          image: vllm/vllm-openai:v0.11.0
          command: ["vllm", "serve", "Qwen/Qwen3-0.6B"]
          args: ["--port", "8000", "--tensor-parallel-size", "2", "--block-size", "16",
                 "--kv-transfer-config", '{{"kv_connector":"NixlConnector","kv_role":"kv_both"}}']
          resources: {{limits: {{nvidia.com/gpu: 2}}}}
"""


def manifest(size: int) -> str:
    out, i, total = [], 0, 0
    while total < size:
        for role in ("prefill", "decode"):
            d = YAML_DOC.format(i=i, role=role)
            out.append(d)
            total += len(d)
        i += 1
    return "".join(out)


def timed(path: str, text: str, runs: int) -> tuple[float, float, int, int]:
    """(median wall seconds, median CPU seconds of this process, workers, pairs) of `lint_text` on one file."""
    from disagg.doctor.context import LintOptions
    from disagg.doctor.engine import lint_text
    from disagg.doctor.registry import default_registry

    rules = [r for r in default_registry() if not r.live]
    samples, cpu, workers = [], [], 0
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        r = lint_text(path, text, rules, LintOptions())
        samples.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        workers = len(r.deployment.workers) if r.deployment else 0
        pairs = len(r.pairs)
    return statistics.median(samples), statistics.median(cpu), workers, pairs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-kb", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", choices=("shell", "yaml"), help="time one of the two files (the YAML one takes ~30 s of CPU at 1 MB)")
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args()
    size = a.size_kb * 1024
    sh, ya = script(size), manifest(size)
    if a.profile:
        from disagg.doctor.context import LintOptions
        from disagg.doctor.engine import lint_text
        from disagg.doctor.registry import default_registry

        rules = [r for r in default_registry() if not r.live]
        prof = cProfile.Profile()
        prof.enable()
        lint_text("bench.sh", sh, rules, LintOptions())
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        return
    for label, path, text in (("shell script", "bench.sh", sh), ("YAML manifest", "bench.yaml", ya)):
        if a.only and path != f"bench.{'sh' if a.only == 'shell' else 'yaml'}":
            continue
        secs, cpu, workers, pairs = timed(path, text, a.runs)
        print(f"{label:14s} {len(text) / 1024:7.0f} KiB  {workers:5d} workers {pairs:7d} pairs  {secs:6.2f} s wall, {cpu:6.2f} s CPU "
              f"(median of {a.runs})")


if __name__ == "__main__":
    main()
