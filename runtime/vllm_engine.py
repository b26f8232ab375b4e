"""The vLLM engine: each VllmWorker and PrefillWorker becomes a vLLM OpenAI server with the NixlConnector.

The config's engine keys become vLLM arguments (true is a bare flag; false is dropped, as Dynamo did, and said so);
Dynamo-only keys are not passed. Each engine gets its own NIXL side-channel port and, on CPU, its own cores.
"""

from __future__ import annotations

import json
import os
import sys

from .ports import free_port

# Keys that steer Dynamo's (and our) routing or placement, not the engine.
NOT_ENGINE_KEYS = frozenset({
    "remote-prefill", "conditional-disagg", "max-local-prefill-length", "max-prefill-queue-size", "router", "common-configs",
    "ServiceArgs", "kv-transfer-config", "model", "served-model-name",
})


def has_cuda() -> bool:
    return os.path.exists("/dev/nvidia0") or os.path.exists("/dev/nvidiactl")


def core_partition(n_engines: int, cores: int | None = None) -> list[str]:
    """Disjoint core ranges, one per engine: two engines that each bind every core fight (requests took 20-90 s)."""
    cores = cores or os.cpu_count() or 1
    per = max(1, cores // max(n_engines, 1))
    out = []
    for i in range(n_engines):
        lo = (i * per) % cores
        hi = min(lo + per - 1, cores - 1)
        out.append(str(lo) if lo == hi else f"{lo}-{hi}")
    return out


def engine_args(keys: dict) -> tuple[list[str], list[str]]:
    """(vLLM arguments, notes) from a section's resolved keys."""
    args, notes = [], []
    for key, value in keys.items():
        if key in NOT_ENGINE_KEYS:
            continue
        if value is True:
            args.append(f"--{key}")
        elif value is False:
            notes.append(f"{key}: false passes no flag (as in Dynamo): vLLM's default applies")
        elif value is not None:
            args += [f"--{key}", str(value)]
    return args, notes


def engine_commands(plan, specs, opt):
    """(spec, argv, env, note) per engine process."""
    cpu = not has_cuda()
    cores = core_partition(len(specs)) if cpu else []
    kv_cfg = {"kv_connector": "NixlConnector", "kv_role": "kv_both", "kv_buffer_device": "cpu" if cpu else "cuda", "kv_load_failure_policy": "fail"}
    out = []
    for i, s in enumerate(specs):
        keys = plan.engine_keys.get(s.role, plan.engine_keys.get("decode", {}))
        notes = []
        connector = None
        raw = keys.get("kv-transfer-config")
        if raw:
            try:
                connector = (json.loads(raw) if isinstance(raw, str) else raw).get("kv_connector")
            except (ValueError, AttributeError):
                connector = None
        if connector == "DynamoNixlConnector":
            notes.append("kv-transfer-config names DynamoNixlConnector (Dynamo v0): running vLLM's NixlConnector, its successor")
        elif connector and connector != "NixlConnector":
            notes.append(f"kv-transfer-config names {connector}: this runtime moves KV with NixlConnector")
        extra, flag_notes = engine_args(keys)
        notes += flag_notes
        argv = [sys.executable, "-m", "disagg.runtime.vllm_launch", "--model", plan.model_path, "--served-model-name", plan.served_model_name,
                "--host", s.host, "--port", str(s.port), "--kv-transfer-config", json.dumps(kv_cfg), *extra]
        if cpu and "kv-cache-memory-bytes" not in keys:
            argv += ["--kv-cache-memory-bytes", str(opt.vllm_kv_cache_bytes)]
        env = {"VLLM_NIXL_SIDE_CHANNEL_PORT": str(free_port()), "VLLM_NIXL_SIDE_CHANNEL_HOST": "127.0.0.1"}
        if cpu:
            env.update({"VLLM_CPU_OMP_THREADS_BIND": cores[i], "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_CPU_KVCACHE_SPACE": "1"})
            notes.append(f"{s.worker_id}: cores {cores[i]}, NIXL side channel 127.0.0.1:{env['VLLM_NIXL_SIDE_CHANNEL_PORT']}")
        out.append((s, argv, env, "; ".join(notes) if notes else ""))
    return out
