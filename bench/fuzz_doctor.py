"""Config fuzzing of the whole doctor, in-process (not a test: the long form runs for a while).

    python bench/fuzz_doctor.py --cases 100000 [--seed 1] [--save /tmp/fuzz-doctor] [--json out.json]

Seeds are our own configs: tests/fixtures, examples, every config in tests/rules/cases and one pair in every format
tests/formats.py builds. Each case mutates one or two of them, YAML structure (keys dropped or duplicated,
scalars swapped for other types, mappings for lists, subtrees copied elsewhere, deep nesting), shell tokens
(dropped, repeated, swapped, random flags with odd values, unbalanced quotes, `$((...))`, `case`/`for` fragments),
characters (deleted, inserted, lines repeated) and truncation; then it reads, pairs and checks them with every
static rule and renders a random output format, with random options (--gpus, --workload, --target-version).

A failure is any exception that escapes, and any internal error the doctor contained (a rule or reader that raised:
exit code 3 for a user). Failures are grouped by crash site (exception type and the innermost line of ours), with
a reproducer saved per site. tests/test_fuzz.py runs a short seeded form of the same loop.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import sys
import time
import traceback
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHARS = list(":[]{}-&*!|>'\"#,?\t\n %@`\\=$;()<") + ["--", '{"', '"}', "'", "\n  - ", " &\n", "<<: *a\n", "&a ", "*a", "{{ .Values.x }}", "${X}", "$(X)"]
FLAGS = [
    "--port", "--tensor-parallel-size", "--tp", "--tp-size", "--pipeline-parallel-size", "--data-parallel-size", "--dp-size", "--block-size",
    "--kv-transfer-config", "--kv-connector", "--disaggregation-mode", "--disaggregation-bootstrap-port", "--disaggregation-transfer-backend",
    "--is-prefill-worker", "--served-model-name", "--model", "--model-path", "--max-model-len", "--gpu-memory-utilization", "--dtype",
    "--kv-cache-dtype", "--enforce-eager", "--host", "--prefill", "--decode", "--router-mode", "--namespace", "--max-num-batched-tokens",
    "--max-local-prefill-length", "--conditional-disagg", "--remote-prefill", "--num-instances", "--replicas", "--kv-events-config",
    "--load-format", "--enable-prefix-caching", "--no-enable-prefix-caching", "--connector", "--kv-connector-extra-config",
]
VALUES = ["0", "-1", "1", "2", "8", "99999999999999999999", "1.5", "nan", "true", "false", "null", "", "''", '""', "prefill", "decode", "both",
          "kv_producer", "kv_consumer", "NixlConnector", "P2pNcclConnector", "LMCacheConnectorV1", "MooncakeConnector", "mooncake", "nixl",
          '{"kv_connector":"NixlConnector","kv_role":"kv_both"}', '{"kv_connector":', '{"kv_connector": 3}', '[1,2]', '{"kv_port": "x"}',
          '{"kv_connector":"P2pNcclConnector","kv_role":"kv_producer","kv_port":21001,"kv_connector_extra_config":{"http_port":"x"}}',
          "$PORT", "${TP:-2}", "$((TP*2))", "$(hostname)", "127.0.0.1", "0.0.0.0", "::1", "localhost:8000", "http://[::1]:x", "Qwen/Qwen3-0.6B"]
ENV = ["VLLM_NIXL_SIDE_CHANNEL_PORT", "VLLM_NIXL_SIDE_CHANNEL_HOST", "UCX_NET_DEVICES", "UCX_TLS", "CUDA_VISIBLE_DEVICES", "DYN_NAMESPACE",
       "VLLM_KV_CACHE_LAYOUT", "NCCL_IB_DISABLE", "HF_TOKEN"]
SHELL_BITS = ["&", "&&", "||", "|", ";", "\\\n", "$(", ")", "`", '"', "'", "<<EOF", "EOF", "case $X in a) ", ";;", "esac", "for i in 1 2; do", "done",
              "if [ -z $X ]; then", "fi", "else", "export", "env A=1", "eval", "$((", "))", "for ((i=0;i<2;i++)); do", "function f {", "}", "f", "#",
              "python3 -m dynamo.vllm", "vllm serve", "python -m sglang.launch_server", "python -m sglang_router.launch_router", "trtllm-serve",
              "python -m dynamo.frontend", "docker run --rm -e X=1 image:tag", "CUDA_VISIBLE_DEVICES=0,1"]
SCALARS = [0, -1, 1, 2, 3.5, 10**30, True, False, None, "", "x", "0", "prefill", "decode", "{{ .Values.x }}", "${X}", "$(X)", "127.0.0.1", [], {}, [None], {"a": None}]
TARGETS = [{}, {"dynamo": "0.3.2"}, {"dynamo": "0.5.1"}, {"vllm": "0.11.2"}, {"dynamo": "1.0.0", "vllm": "0.12.0"}]


def seeds() -> list[tuple[str, str]]:
    """(file name, text) of every seed config."""
    out: list[tuple[str, str]] = []
    for folder in (ROOT / "tests" / "fixtures", ROOT / "examples"):
        for p in sorted(folder.rglob("*")):
            if p.is_file() and p.suffix in (".yaml", ".yml", ".sh", ".j2") and "precommit-repo" not in p.parts:
                out.append((p.name, p.read_text(errors="replace")))
    for p in sorted((ROOT / "tests" / "rules" / "cases").glob("DG*.yml")):
        spec = yaml.safe_load(p.read_text())
        if spec.get("live"):
            continue
        for case in spec.get("cases", []):
            if isinstance(case.get("config"), str):
                out.append((case.get("path", "case.yaml"), case["config"]))
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import formats

        for build, _ in formats.FORMATS.values():
            for p, d in ((formats.BASE, formats.BASE), (formats.BASE, {**formats.BASE, "tp": "2", "port": "5600"})):
                out.extend(build(dict(p), dict(d)).items())
    finally:
        sys.path.remove(str(ROOT / "tests"))
    return out


# --- mutations ---------------------------------------------------------------------------------------------------


def mutate_chars(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 8)):
        pos, k = rng.randrange(len(text) + 1), rng.random()
        if k < 0.4:
            text = text[:pos] + text[pos + 1 :]
        elif k < 0.8:
            text = text[:pos] + rng.choice(CHARS) + text[pos:]
        else:
            lines = text.splitlines(True) or [""]
            i = rng.randrange(len(lines))
            text = "".join(lines[: i + 1] + lines[i:])
    return text


def truncate(rng: random.Random, text: str) -> str:
    return text[: rng.randrange(len(text) + 1)]


MAX_NODES = 20_000


def _nodes(data, path=()):
    yield path, data
    if len(path) > 60:
        return
    if isinstance(data, dict):
        for k, v in list(data.items()):
            yield from _nodes(v, path + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _nodes(v, path + (i,))


def _set(data, path, value):
    node = data
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value


def mutate_tree(rng: random.Random, data):
    """Structure and type mutations of parsed YAML, in place where possible; returns the new root."""
    for _ in range(rng.randint(1, 5)):
        # at most MAX_NODES places: `node + node` repeated on shared lists grows the tree geometrically (a seed-15 case
        # took this loop, not the doctor, to 24 GB)
        nodes = list(itertools.islice(_nodes(data), MAX_NODES + 1))
        if len(nodes) > MAX_NODES:
            break
        path, node = rng.choice(nodes)
        k = rng.random()
        if not path:
            if k < 0.2:
                data = rng.choice([[data], {"x": data}, None, "text", 3])
            continue
        if k < 0.25:
            _set(data, path, rng.choice(SCALARS) if rng.random() < 0.7 else _flagged(rng, node))
        elif k < 0.4 and isinstance(node, (int, float, bool)) and not isinstance(node, bool):
            _set(data, path, str(node) if rng.random() < 0.5 else -node)
        elif k < 0.5 and isinstance(node, str):
            _set(data, path, rng.choice([int(x) if x.isdigit() else x for x in [node[: len(node) // 2], node + " " + rng.choice(FLAGS), "1"]]))
        elif k < 0.6:
            parent = _parent(data, path)
            if isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif isinstance(parent, list) and path[-1] < len(parent):
                parent.pop(path[-1])
        elif k < 0.7 and isinstance(node, dict):
            _set(data, path, list(node.values()) if rng.random() < 0.5 else list(node.items()))
        elif k < 0.8 and isinstance(node, list):
            _set(data, path, {str(i): v for i, v in enumerate(node)} if rng.random() < 0.5 else node + node)
        elif k < 0.9:
            other = rng.choice(nodes)[1]
            parent = _parent(data, path)
            if isinstance(parent, dict):
                parent[rng.choice([str(path[-1]) + "2", "Prefill" + str(path[-1]), "decode", "VllmPrefillWorker", "replicas", "args", "env"])] = _copy_or_text(other)
            elif isinstance(parent, list):
                parent.append(_copy_or_text(other))
        else:
            _set(data, path, _nest(rng, node))
    return data


def _parent(data, path):
    node = data
    for k in path[:-1]:
        node = node[k]
    return node


def _copy(node):
    """A fresh copy of plain data; ValueError or RecursionError for a node that holds itself."""
    return json.loads(json.dumps(node, default=str))


def _copy_or_text(node):
    """A fresh copy of a node, or its type's name for one that holds itself (an earlier mutation put a node under
    itself through a list or mapping shared by two places)."""
    try:
        return _copy(node)
    except (ValueError, RecursionError):
        return type(node).__name__


def _nest(rng, node):
    for _ in range(rng.randint(1, 40)):
        node = [node] if rng.random() < 0.5 else {"a": node}
    return node


def _flagged(rng, node):
    return f"{rng.choice(FLAGS)} {rng.choice(VALUES)}" if not isinstance(node, list) else node + [rng.choice(FLAGS), rng.choice(VALUES)]


def mutate_yaml(rng: random.Random, text: str) -> str:
    try:
        docs = [d for d in yaml.safe_load_all(text)]
    except yaml.YAMLError:
        return mutate_chars(rng, text)
    if not docs:
        return mutate_chars(rng, text)
    try:
        docs = _copy(docs)  # plain data: no aliases shared between places, no recursive structure (`&a [*a]`)
    except (ValueError, RecursionError):
        return mutate_chars(rng, text)
    i = rng.randrange(len(docs))
    docs[i] = mutate_tree(rng, docs[i])
    try:
        return yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=rng.random() < 0.2)
    except (yaml.YAMLError, RecursionError, ValueError):
        return text


def mutate_shell(rng: random.Random, text: str) -> str:
    lines = text.splitlines() or [""]
    for _ in range(rng.randint(1, 6)):
        i = rng.randrange(len(lines))
        tokens = lines[i].split(" ")
        k = rng.random()
        j = rng.randrange(len(tokens) + 1)
        if k < 0.2 and tokens:
            del tokens[min(j, len(tokens) - 1)]
        elif k < 0.35 and tokens:
            tokens.insert(j, tokens[min(j, len(tokens) - 1)])
        elif k < 0.6:
            tokens[j:j] = [rng.choice(FLAGS)] + ([rng.choice(VALUES)] if rng.random() < 0.8 else [])
        elif k < 0.7:
            tokens.insert(j, f"{rng.choice(ENV)}={rng.choice(VALUES)}")
        elif k < 0.85:
            tokens.insert(j, rng.choice(SHELL_BITS))
        elif k < 0.93 and len(tokens) > 1:
            a, b = rng.randrange(len(tokens)), rng.randrange(len(tokens))
            tokens[a], tokens[b] = tokens[b], tokens[a]
        else:
            lines.insert(i, rng.choice(SHELL_BITS) + " " + " ".join(rng.choice(FLAGS + VALUES) for _ in range(rng.randint(0, 4))))
            continue
        lines[i] = " ".join(tokens)
    return "\n".join(lines) + ("\n" if rng.random() < 0.9 else "")


def mutate_embedded_args(rng: random.Random, text: str) -> str:
    """Shell mutations inside a YAML file's command strings (args: "vllm serve ...", DGD args, compose command)."""
    spots = [m for m in re.finditer(r"(--[a-z][a-z0-9-]+)", text)]
    if not spots:
        return mutate_yaml(rng, text)
    m = rng.choice(spots)
    insert = f"{rng.choice(FLAGS)} {rng.choice(VALUES)} " if rng.random() < 0.7 else rng.choice(SHELL_BITS) + " "
    return text[: m.start()] + insert + text[m.start() :]


def mutate(rng: random.Random, name: str, text: str) -> str:
    script = name.removesuffix(".j2").endswith((".sh", ".bash"))
    ops = [mutate_chars, truncate] + ([mutate_shell] * 4 if script else [mutate_yaml] * 5 + [mutate_embedded_args] * 4 + [mutate_shell])
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        text = rng.choice(ops)(rng, text)
    return text


# --- running -------------------------------------------------------------------------------------------------------


class Recorder:
    """Every exception the doctor contained, as it passes through crash_summary (the one place that words them)."""

    def __init__(self):
        self.seen: list[BaseException] = []

    def install(self) -> None:
        from disagg.doctor import check, files, finding

        original = finding.crash_summary

        def recording(exc: BaseException) -> str:
            self.seen.append(exc)
            return original(exc)

        check.crash_summary = files.crash_summary = recording

    def uninstall(self) -> None:
        from disagg.doctor import check, files, finding

        check.crash_summary = files.crash_summary = finding.crash_summary


def site(exc: BaseException) -> str:
    """Exception type and the innermost frame of ours (file:line, function)."""
    if isinstance(exc, MemoryError):
        exc.__traceback__ = None  # what it holds is what ran out: the case's inputs are the reproducer
        return "MemoryError"
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if str(ROOT) in f.filename or "/disagg/" in f.filename]
    f = (ours or frames or [None])[-1]
    where = f"{os.path.relpath(f.filename, ROOT)}:{f.lineno} in {f.name}" if f is not None else "?"
    return f"{type(exc).__name__} at {where}"


def run_case(rng: random.Random, corpus: list[tuple[str, str]], rules, recorder: Recorder) -> tuple[list[tuple[str, BaseException]], list[tuple[str, str]]]:
    from disagg.doctor.check import lint_results
    from disagg.doctor.context import LintOptions
    from disagg.doctor.files import read_file
    from disagg.doctor.output import render
    from disagg.doctor.registry import default_registry
    from disagg.doctor.workload import parse_workload

    n = 1 if rng.random() < 0.8 else 2
    picked = [rng.choice(corpus) for _ in range(n)]
    inputs = [(f"fuzz{i}-{name}", mutate(rng, name, text) if rng.random() < 0.97 else text) for i, (name, text) in enumerate(picked)]
    options = LintOptions(gpus=rng.choice([None, 0, 1, 4, 8]), workload=parse_workload(rng.choice(["isl=300", "isl=5000,osl=10,prefix-hit=0.5"])) if rng.random() < 0.3 else None,
                          target=rng.choice(TARGETS))
    recorder.seen.clear()
    failures: list[tuple[str, BaseException]] = []
    try:
        results = [read_file(path, text, options, explicit=rng.random() < 0.7, fmt="auto") for path, text in inputs]
        results = lint_results(results, rules, options)
        render(rng.choice(["text", "json", "sarif", "github", "junit"]), results, default_registry(), verbose=rng.random() < 0.5)
    except Exception as exc:  # noqa: BLE001 - an escaping exception is what we look for
        failures.append(("escaped", exc))
    failures += [("contained", exc) for exc in recorder.seen]
    return failures, inputs


def fuzz(cases: int, seed: int, save: Path | None = None, progress: float = 0.0, seconds: float | None = None) -> dict:
    from disagg.doctor.registry import default_registry

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 3000))
    corpus = seeds()
    rules = [r for r in default_registry() if not r.live]
    recorder = Recorder()
    recorder.install()
    try:
        return _loop(cases, seed, save, progress, seconds, corpus, rules, recorder)
    finally:
        recorder.uninstall()
        sys.setrecursionlimit(limit)


def _loop(cases, seed, save, progress, seconds, corpus, rules, recorder) -> dict:
    rng = random.Random(seed)
    sites: dict[str, dict] = {}
    t0 = last = time.monotonic()
    done = failed = 0
    while done < cases and (seconds is None or time.monotonic() - t0 < seconds):
        case_rng = random.Random(rng.getrandbits(64))
        failures, inputs = run_case(case_rng, corpus, rules, recorder)
        done += 1
        if failures:
            failed += 1
        for how, exc in failures:
            key = site(exc)
            entry = sites.setdefault(key, {"count": 0, "how": how, "example": f"{type(exc).__name__}: {str(exc)[:300]}"})
            entry["count"] += 1
            if save is not None and entry["count"] == 1:
                save.mkdir(parents=True, exist_ok=True)
                slug = re.sub(r"[^A-Za-z0-9]+", "_", key)[:120]
                tb = "MemoryError" if isinstance(exc, MemoryError) else "".join(traceback.format_exception(exc))
                (save / f"{slug}.json").write_text(json.dumps({"site": key, "inputs": inputs, "traceback": tb}, indent=1))
        if progress and time.monotonic() - last > progress:
            last = time.monotonic()
            print(f"{done} cases, {failed} failing, {len(sites)} sites, {done / (last - t0):.0f} cases/s", file=sys.stderr, flush=True)
    return {"cases": done, "failing_cases": failed, "failures": sum(s["count"] for s in sites.values()), "sites": sites,
            "seconds": round(time.monotonic() - t0, 1), "seeds": len(corpus), "seed": seed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, help="stop after this long even if fewer cases ran")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--save", type=Path, default=Path("/tmp/fuzz-doctor"), help="a reproducer (inputs and traceback) per crash site")
    ap.add_argument("--json", type=Path, help="write the summary here too")
    ap.add_argument("--progress", type=float, default=60.0, help="seconds between progress lines on stderr")
    ap.add_argument("--max-memory-gb", type=float, default=4.0,
                    help="address-space cap, so a case that makes the doctor grow without bound is a MemoryError with a reproducer, not an OOM kill")
    args = ap.parse_args()
    if args.max_memory_gb:
        import resource

        cap = int(args.max_memory_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    out = fuzz(args.cases, args.seed, args.save, args.progress, args.seconds)
    text = json.dumps(out, indent=1)
    if args.json:
        args.json.write_text(text)
    print(text)
    print(f"{out['cases']} cases in {out['seconds']} s: {out['failing_cases']} failing, {out['failures']} failures at {len(out['sites'])} sites", file=sys.stderr)
    sys.exit(1 if out["sites"] else 0)


if __name__ == "__main__":
    main()
