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

# vLLM v1 (0.8 .. 0.34). Older releases in the second entry of a list. Names added since 0.32 carry the release and
# file they were read from (the published wheel of that release).
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
    # NixlConnector's stats (vllm/distributed/kv_transfer/kv_connector/v1/nixl/stats.py), else MooncakeConnector's
    # (v1/mooncake/stats.py, from vLLM 0.33.0): an engine runs one connector, so the first name present is its own.
    # `nixl_num_failed_notifications` is not read: since 0.31 those failures are also counted in `nixl_num_failed_transfers`.
    "kv_failures": [("vllm:nixl_num_failed_transfers_total", {}, {}), ("vllm:nixl_num_failed_transfers", {}, {}), ("vllm:mooncake_num_failed_transfers_total", {}, {})],
    "kv_recv_failures": [("vllm:mooncake_num_failed_recvs_total", {}, {})],  # 0.33.0: the decode side's failed receives (the sender counts its own above)
    "kv_expired": [("vllm:nixl_num_kv_expired_reqs_total", {}, {}), ("vllm:nixl_num_kv_expired_reqs", {}, {}), ("vllm:mooncake_num_kv_expired_reqs_total", {}, {})],
    # 0.32.0 nixl/stats.py: a completion notification for a request whose KV lease had expired: "the KV blocks may
    # have been reused before the transfer finished" (counted per remote rank, on the prefill instance).
    "kv_notif_after_expiry": [("vllm:nixl_num_notifications_after_expiry_total", {}, {})],
    "kv_bytes": [("vllm:nixl_bytes_transferred_sum", {}, {}), ("vllm:nixl_bytes_transferred_total", {}, {}), ("vllm:mooncake_bytes_transferred_sum", {}, {})],
    # 0.32.0 v1/metrics/loggers.py, only on a KV consumer (the decode side): requests waiting for remote KV by stage,
    # `waiting_to_start` | `in_progress` | `completed_waiting` (the scheduler's WAITING_FOR_REMOTE_KVS).
    "kv_fetch": [("vllm:num_requests_kv_fetch_by_stage", {}, {})],
    # v1/metrics/loggers.py (0.28.0 .. 0.34.0): waiting requests deferred by a transient constraint (LoRA budget,
    # KV transfer, blocked status), as opposed to `capacity`.
    "waiting_deferred": [("vllm:num_requests_waiting_by_reason", {"reason": "deferred"}, {})],
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
    "stage_requests": [("dynamo_frontend_stage_requests", {}, {})],  # requests now in a pipeline stage, by `phase` (prefill|decode) and `stage` (route|dispatch|...)
}

# SGLang PD disaggregation. PD names read from sglang/srt/observability/metrics_collector.py of the 0.5.10, 0.5.14
# and 0.5.23 wheels.
SGLANG = {
    "kv_failures": [("sglang:num_transfer_failed_reqs_total", {}, {}), ("sglang:num_transfer_failed_reqs", {}, {})],
    "bootstrap_failures": [("sglang:num_bootstrap_failed_reqs_total", {}, {})],  # the prefill/decode handshake failed
    "kv_fetch": [("sglang:num_decode_transfer_queue_reqs", {}, {})],  # decode side: requests whose KV is being received
    "running": [("sglang:num_running_reqs", {}, {})],
    "waiting": [("sglang:num_queue_reqs", {}, {})],
    "prompt_tokens_computed": [("sglang:prompt_tokens_total", {}, {})],  # prompt tokens the server took in, cache hits included
}

# llm-d's endpoint picker (router): its P/D decisions, `decision_type` decode-only | prefill-decode | encode-decode |
# encode-prefill-decode. llm-d/llm-d-inference-scheduler pkg/metrics/metrics.go: `pd_decision_total` from v0.5.0,
# `disagg_decision_total` from v0.7.0 (each profile handler records one of them); llm-d/llm-d-router v0.10.0
# pkg/epp/framework/plugins/scheduling/profilehandler/disagg/metrics.go adds the `llm_d_epp_` copies (with plugin
# labels) and deprecates the `llm_d_inference_scheduler_` ones, still recorded alongside.
LLMD = {
    "pd_decisions": [("llm_d_epp_disagg_decision_total", {}, {}), ("llm_d_inference_scheduler_disagg_decision_total", {}, {}),
                     ("llm_d_epp_pd_decision_total", {}, {}), ("llm_d_inference_scheduler_pd_decision_total", {}, {})],
}
PREFILL_DECISIONS = ("prefill-decode", "encode-prefill-decode")  # llm-d decisions that send the request to a prefill pod

TABLES = {"disagg": DISAGG, "vllm": VLLM, "dynamo": DYNAMO, "sglang": SGLANG, "llm-d": LLMD}
PREFIXES = {"disagg": "disagg_", "vllm": "vllm:", "dynamo": "dynamo_", "sglang": "sglang:", "llm-d": "llm_d_"}


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
