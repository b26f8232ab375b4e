"""Metric names of each system we read, mapped to one set of signals. One table per system and version: names
change between releases (vLLM renamed `gpu_cache_usage_perc` to `kv_cache_usage_perc`, counters gained `_total`),
and the diagnosis must not care which one it is reading."""

from __future__ import annotations

from disagg.schemas.metrics import FRONTEND, WORKER

# signal -> list of (metric name, label filter, label renames). The first name present in a scrape wins.
# The reference runtime's names come from its contract (schemas/metrics.py), never spelled twice.
DISAGG = {
    signal: [(metric.exposed, {}, {})]
    for signal, metric in {
        "requests": FRONTEND["requests"],
        "worker_requests": FRONTEND["worker_requests"],
        "worker_up": FRONTEND["worker_up"],
        "worker_info": FRONTEND["worker_info"],
        "queue_size": FRONTEND["queue_size"],
        "in_flight": FRONTEND["in_flight"],
        "errors": FRONTEND["errors"],
        "kv_bytes": FRONTEND["kv_bytes"],
        "kv_failures": FRONTEND["kv_failures"],
        "prompt_tokens": FRONTEND["prompt_tokens"],
        "isl_bucket": FRONTEND["prompt_len"],
        "ttft_bucket": FRONTEND["ttft"],
        "policy": FRONTEND["policy"],
        "kv_expired": WORKER["kv_expired"],
        "kv_refused": WORKER["kv_refused"],
        "busy_seconds": WORKER["busy"],
        "running": WORKER["running"],
        "waiting": WORKER["waiting"],
        "prompt_tokens_computed": WORKER["computed_tokens"],
        "engine_requests": WORKER["requests"],
    }.items()
}
# Progress: requests finished and tokens streamed (a histogram's _count grows by one per observation).
DISAGG["completed"] = [(FRONTEND["duration"].name + "_count", {}, {})]
DISAGG["output_tokens"] = [(FRONTEND["itl"].name + "_count", {}, {})]

# vLLM v1 (0.8 .. 0.32). Older releases in the second entry of a list.
VLLM = {
    "prompt_tokens": [("vllm:prompt_tokens_by_source_total", {}, {"source": {"local_compute": "local_compute", "local_cache_hit": "prefix_cache", "external_kv_transfer": "kv_transfer"}})],
    "engine_requests": [("vllm:request_success_total", {}, {}), ("vllm:request_success", {}, {})],
    # Prompt tokens the engine computed itself (not read from its prefix cache nor received over a KV connector).
    "prompt_tokens_computed": [("vllm:prompt_tokens_by_source_total", {"source": "local_compute"}, {}), ("vllm:prompt_tokens_total", {}, {})],
    "running": [("vllm:num_requests_running", {}, {})],
    "waiting": [("vllm:num_requests_waiting", {}, {})],
    "kv_usage": [("vllm:kv_cache_usage_perc", {}, {}), ("vllm:gpu_cache_usage_perc", {}, {})],
    "isl_bucket": [("vllm:request_prompt_tokens_bucket", {}, {})],
    "ttft_bucket": [("vllm:time_to_first_token_seconds_bucket", {}, {})],
    "kv_failures": [("vllm:nixl_num_failed_transfers_total", {}, {}), ("vllm:nixl_num_failed_transfers", {}, {})],
    "kv_expired": [("vllm:nixl_num_kv_expired_reqs_total", {}, {}), ("vllm:nixl_num_kv_expired_reqs", {}, {})],
    "kv_bytes": [("vllm:nixl_bytes_transferred_sum", {}, {}), ("vllm:nixl_bytes_transferred_total", {}, {})],
    "completed": [("vllm:e2e_request_latency_seconds_count", {}, {})],
    "output_tokens": [("vllm:generation_tokens_total", {}, {}), ("vllm:generation_tokens", {}, {})],
}

# Dynamo 1.x frontend and components.
DYNAMO = {
    "frontend_requests": [("dynamo_frontend_requests_total", {}, {})],
    "prefill_admissions": [("dynamo_frontend_router_admission_received_total", {"worker_type": "prefill"}, {})],
    "decode_admissions": [("dynamo_frontend_router_admission_received_total", {"worker_type": "decode"}, {})],
    "isl_bucket": [("dynamo_frontend_input_sequence_tokens_bucket", {}, {})],
    "ttft_bucket": [("dynamo_frontend_time_to_first_token_seconds_bucket", {}, {})],
    "failures": [("dynamo_frontend_failures_total", {}, {})],  # e.g. reason="backend.unavailable": the model is not ready
    "models": [("dynamo_frontend_model_context_length", {}, {})],  # one series per model the frontend knows
    "registered": [("dynamo_component_router_worker_registered", {}, {})],  # workers per worker_type behind the router
    "in_flight": [("dynamo_frontend_inflight_requests", {}, {})],
    "completed": [("dynamo_frontend_request_duration_seconds_count", {}, {})],
    "output_tokens": [("dynamo_frontend_output_tokens_total", {}, {})],
}

# SGLang PD disaggregation.
SGLANG = {
    "kv_failures": [("sglang:num_transfer_failed_reqs_total", {}, {}), ("sglang:num_transfer_failed_reqs", {}, {})],
    "running": [("sglang:num_running_reqs", {}, {})],
    "waiting": [("sglang:num_queue_reqs", {}, {})],
    "prompt_tokens_computed": [("sglang:prompt_tokens_total", {}, {})],  # prompt tokens the server took in, cache hits included
}

TABLES = {"disagg": DISAGG, "vllm": VLLM, "dynamo": DYNAMO, "sglang": SGLANG}
PREFIXES = {"disagg": "disagg_", "vllm": "vllm:", "dynamo": "dynamo_", "sglang": "sglang:"}


def detect(names: set[str]) -> list[str]:
    """Which systems a scrape comes from, by metric-name prefix."""
    return [system for system, prefix in PREFIXES.items() if any(n.startswith(prefix) for n in names)]


def signals(samples, systems: list[str] | None = None) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Map a scrape's samples onto signals: signal -> [(labels, value)], using the first alias present."""
    by_name: dict[str, list] = {}
    for name, labels, value in samples:
        by_name.setdefault(name, []).append((labels, value))
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for system in systems or detect(set(by_name)):
        for signal, candidates in TABLES[system].items():
            if signal in out:
                continue
            for name, want, renames in candidates:
                if name not in by_name:
                    continue
                rows = []
                for labels, value in by_name[name]:
                    lab = dict(labels)
                    if any(lab.get(k) != v for k, v in want.items()):
                        continue
                    for key, mapping in renames.items():
                        if key in lab:
                            lab[key] = mapping.get(lab[key], lab[key])
                    rows.append((lab, value))
                out[signal] = rows
                break
    return out
