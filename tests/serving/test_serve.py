"""`disagg serve` with the mock engine, end to end on loopback: routing, KV over NIXL, metrics, faults, shutdown."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request

import pytest

from .conftest import EXAMPLES, alive, complete, complete_many, prompt, raw, start_server, variant, wait_for

pytestmark = pytest.mark.slow
KV_BYTES_PER_TOKEN = 8 * 2 * 4 * 64 * 2  # the mock's default model shape: layers × (K,V) × kv heads × head size × bf16


def test_seed_broken_config_never_uses_the_prefill_worker(serve):
    s = serve(EXAMPLES / "seed-broken.yaml")
    results = complete_many(s, [{"prompt": prompt(200, str(i)), "max_tokens": 4} for i in range(10)])
    assert all(code == 200 for code, _ in results)
    assert {r["disagg"]["reason"] for _, r in results} == {"disabled"}
    assert s.metric("disagg_requests_total", route="local", reason="disabled") == 10
    assert s.metric("disagg_requests_total", route="remote") == 0
    assert s.metric("disagg_worker_requests_total", role="prefill") == 0
    assert s.metric("disagg_worker_requests_total", role="decode") == 10
    assert s.metric("disagg_kv_transfer_bytes_total") == 0
    assert s.metric("disagg_prompt_tokens_total", source="local_compute") == 2000


@pytest.fixture(scope="module")
def fixed(serve):
    return serve(EXAMPLES / "seed-fixed.yaml", "--fault-injection")


def test_fixed_config_sends_isl_200_remote_with_kv_moved_and_checked(fixed):
    before = fixed.metric("disagg_kv_transfer_bytes_total")
    # One at a time: concurrent requests would (rightly) meet a full prefill queue (max-prefill-queue-size 3).
    results = [complete(fixed, {"prompt": prompt(200, f"r{i}"), "max_tokens": 4}) for i in range(10)]
    assert all(code == 200 for code, _ in results)
    # `--kv-transport auto`: NIXL where it imports, else the workers' own connections (the start says which).
    from disagg.runtime.kv import nixl_available

    transport = "nixl" if nixl_available() is None else "channel"
    assert {(r["disagg"]["route"], r["disagg"]["kv"]["status"], r["disagg"]["kv"]["transport"]) for _, r in results} == {("remote", "ok", transport)}
    assert fixed.metric("disagg_requests_total", route="remote", reason="remote") >= 10
    assert fixed.metric("disagg_kv_transfer_bytes_total") - before == 10 * 200 * KV_BYTES_PER_TOKEN
    assert fixed.metric("disagg_kv_transfer_failures_total") == 0
    assert fixed.metric("disagg_worker_requests_total", role="prefill") >= 10
    assert fixed.metric("disagg_kv_transfer_seconds_count") >= 10


def test_short_prompts_stay_local_below_the_threshold(fixed):
    code, r = complete(fixed, {"prompt": "hi", "max_tokens": 2})
    assert code == 200 and (r["disagg"]["route"], r["disagg"]["reason"]) == ("local", "below_threshold")


def test_injected_kv_failure_falls_back_to_local_with_the_same_output(fixed):
    body = {"prompt": prompt(200, "same-output"), "max_tokens": 8}
    code, remote = complete(fixed, body)
    assert code == 200 and remote["disagg"]["route"] == "remote"
    fails = fixed.metric("disagg_kv_transfer_failures_total", reason="injected")
    urllib.request.urlopen(urllib.request.Request(fixed.url + "/debug/faults", data=json.dumps({"kv_fail": 1}).encode(), method="POST"), timeout=5)
    code, local = complete(fixed, body)
    assert code == 200
    assert (local["disagg"]["route"], local["disagg"]["reason"]) == ("local", "kv_transfer_failed")
    assert fixed.metric("disagg_kv_transfer_failures_total", reason="injected") == fails + 1
    # The KV decides the output: a local prefill and a remote one of the same prompt must agree token for token.
    assert local["choices"][0]["text"] == remote["choices"][0]["text"]


def test_corrupted_kv_is_caught_by_its_checksum(fixed):
    urllib.request.urlopen(urllib.request.Request(fixed.url + "/debug/faults", data=json.dumps({"kv_corrupt": 1}).encode(), method="POST"), timeout=5)
    code, r = complete(fixed, {"prompt": prompt(200, "corrupt"), "max_tokens": 4})
    assert code == 200 and r["disagg"]["reason"] == "kv_transfer_failed" and r["disagg"]["kv"]["reason"] == "checksum"
    clean = complete(fixed, {"prompt": prompt(200, "corrupt"), "max_tokens": 4})[1]
    assert clean["disagg"]["route"] == "remote" and clean["choices"][0]["text"] == r["choices"][0]["text"]


def test_threshold_1000_keeps_isl_200_local(serve, tmp_path):
    s = serve(variant(tmp_path, "t1000.yaml", **{"VllmWorker.max-local-prefill-length": 1000}))
    results = complete_many(s, [{"prompt": prompt(200, str(i)), "max_tokens": 2} for i in range(5)])
    assert {r["disagg"]["reason"] for _, r in results} == {"below_threshold"}
    assert s.metric("disagg_requests_total", route="local", reason="below_threshold") == 5
    assert s.metric("disagg_worker_requests_total", role="prefill") == 0


def test_queue_limit_1_under_20_concurrent_requests_goes_local_queue_full(serve, tmp_path):
    s = serve(variant(tmp_path, "q1.yaml", **{"VllmWorker.max-prefill-queue-size": 1}), "--mock-prefill-us-per-token", "500")
    results = complete_many(s, [{"prompt": prompt(200, str(i)), "max_tokens": 2} for i in range(20)])
    assert all(code == 200 for code, _ in results)
    reasons = [r["disagg"]["reason"] for _, r in results]
    assert reasons.count("queue_full") > 0 and reasons.count("remote") > 0, reasons
    assert s.metric("disagg_requests_total", route="local", reason="queue_full") == reasons.count("queue_full")
    assert s.metric("disagg_prefill_queue_wait_seconds_count") >= 1


def test_killed_prefill_worker_mid_load_loses_nothing_and_comes_back(serve, tmp_path):
    cfg = variant(tmp_path, "always.yaml", **{"VllmWorker.conditional-disagg": False, "VllmWorker.max-local-prefill-length": None})
    # 100 ms per prefill: a few finish remotely before the kill; the rest fall back to the decode worker (~5 s there).
    s = serve(cfg, "--mock-prefill-us-per-token", "500", "--prefill-timeout", "30")
    pid = next(w["pid"] for w in s.workers() if w["role"] == "prefill")
    import threading

    def kill_soon():  # once remote prefills are flowing, with dozens still queued behind them
        deadline = time.monotonic() + 20
        while s.metric("disagg_requests_total", route="remote") < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)

    threading.Thread(target=kill_soon).start()
    results = complete_many(s, [{"prompt": prompt(200, str(i)), "max_tokens": 2} for i in range(50)], timeout=60)
    assert [code for code, _ in results] == [200] * 50
    reasons = [r["disagg"]["reason"] for _, r in results]
    assert reasons.count("remote") >= 1 and reasons.count("prefill_failed") + reasons.count("no_prefill_workers") >= 1, reasons
    assert s.metric("disagg_requests_total", route="local", reason="prefill_failed") == reasons.count("prefill_failed")
    def prefill_worker():
        return next(w for w in s.workers() if w["role"] == "prefill")

    wait_for(lambda: (w := prefill_worker())["up"] and w["pid"] != pid, 20, prefill_worker)  # the supervisor restarts it; the frontend sees a new pid
    w = prefill_worker()
    assert w["restarts"] == 1 and s.metric("disagg_worker_restarts_total", role="prefill") == 1
    code, r = complete(s, {"prompt": prompt(200, "after"), "max_tokens": 2})
    assert code == 200 and r["disagg"]["route"] == "remote" and r["disagg"]["prefill_worker"] == "prefill-0"


def test_dead_decode_worker_gives_an_error_not_a_hang(serve):
    s = serve(EXAMPLES / "seed-fixed.yaml")
    pid = next(w["pid"] for w in s.workers() if w["role"] == "decode")
    os.kill(pid, signal.SIGKILL)
    code, r = complete(s, {"prompt": "hello", "max_tokens": 2}, timeout=5)  # a hang would raise a timeout here
    # Either answer is right, and which one comes is a race: a 503 if the frontend saw the worker down first (its
    # only decode worker), or the answer itself if the request reached the listening socket the supervisor keeps,
    # where the restarted worker (0.5 s back-off) takes it from the backlog. Seen in CI under load: the latter.
    if code == 200:
        assert r["disagg"]["decode_worker"] == "decode-0" and r["choices"][0]["text"], r
    else:
        assert code == 503 and r["error"]["type"] == "server_error", r
    def restarted():  # the supervisor restarts it and the frontend sees the new process
        workers = s.workers()
        return all(w["up"] for w in workers) and next(w for w in workers if w["role"] == "decode")["pid"] != pid

    wait_for(restarted, 20, s.workers)
    assert complete(s, {"prompt": "hello", "max_tokens": 2})[0] == 200


def test_prefix_cache_hits_shrink_the_remote_prefill(serve, tmp_path):
    s = serve(variant(tmp_path, "prefix.yaml", **{"VllmWorker.enable-prefix-caching": True, "VllmWorker.block-size": 16, "PrefillWorker.block-size": 16, "Processor.block-size": 16}))
    shared = prompt(192, "shared-prefix")
    first = complete(s, {"prompt": shared + "tail one", "max_tokens": 2})[1]
    second = complete(s, {"prompt": shared + "tail two", "max_tokens": 2})[1]
    assert first["disagg"]["cached_tokens"] == 0 and second["disagg"]["cached_tokens"] == 192
    assert second["disagg"]["route"] == "local" and second["disagg"]["reason"] == "below_threshold"  # 8 uncached tokens <= 10
    assert s.metric("disagg_prompt_tokens_total", source="prefix_cache") == 192
    third = complete(s, {"prompt": shared + "a much longer tail that is well past the threshold", "max_tokens": 2})[1]
    assert third["disagg"]["route"] == "remote" and third["disagg"]["kv"]["bytes"] == (len(shared + "a much longer tail that is well past the threshold") - 192) * KV_BYTES_PER_TOKEN


def test_kv_over_the_channel_when_nixl_is_not_used(serve):
    s = serve(EXAMPLES / "seed-fixed.yaml", "--kv-transport", "channel")
    code, r = complete(s, {"prompt": prompt(200), "max_tokens": 2})
    assert code == 200 and r["disagg"]["route"] == "remote" and r["disagg"]["kv"]["transport"] == "channel"
    code, again = complete(s, {"prompt": prompt(200), "max_tokens": 2})
    assert again["choices"][0]["text"] == r["choices"][0]["text"]  # the same KV, whichever way it moved


def test_openai_surface(fixed):
    models = fixed.get("/v1/models")
    assert models["data"][0]["id"] == "tiny"
    health = fixed.get("/health")
    assert health["status"] == "ok" and {w["role"] for w in health["workers"]} == {"decode", "prefill"}
    info = fixed.metrics()  # one scrape target: the frontend carries each worker's engine series, by worker_id
    for w in fixed.workers():
        assert set(w) >= {"id", "role", "pid", "device", "address", "up"} and alive(w["pid"])
        assert any(name == "disagg_engine_busy_seconds_total" and dict(lab)["worker_id"] == w["id"] for name, lab in info)
    assert any(name == "disagg_worker_info" and dict(lab)["role"] == "prefill" for name, lab in info)
    cfg = fixed.get("/config")
    assert cfg["policy"]["max_local_prefill_length"] == 10 and "remote-prefill: true" in cfg["text"] and "path" not in cfg


@pytest.mark.parametrize(
    "body, status, fragment",
    [
        (b"{not json", 400, "not valid JSON"),
        (b'{"max_tokens": 3}', 400, "prompt"),
        (b'{"prompt": "x", "max_tokens": 0}', 400, "max_tokens"),
        (b'{"prompt": "x", "model": "gpt-4"}', 404, "not served here"),
        (b'{"prompt": "x", "max_tokens": 5000}', 400, "exceeds max-model-len"),
        (b'{"prompt": "x", "n": 2}', 400, "n"),
        (b"[1, 2]", 400, "JSON object"),
    ],
)
def test_bad_requests_get_openai_errors(fixed, body, status, fragment):
    code, text = raw(fixed.url, body, timeout=10)
    assert code == status
    err = json.loads(text)["error"]
    assert fragment in err["message"] and err["type"] == "invalid_request_error"


def test_streaming_completions_and_chat(fixed):
    req = urllib.request.Request(fixed.url + "/v1/completions", data=json.dumps({"prompt": prompt(200, "s"), "max_tokens": 5, "stream": True}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream") and r.headers["X-Disagg-Route"] == "remote"
        events = [line[6:] for line in r.read().decode().splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    # 5 tokens (one mock word each); how many chunks carry them depends on how the engine's batches arrive
    assert len("".join(c["choices"][0]["text"] for c in chunks).split()) == 5 and chunks[-1]["choices"][0]["finish_reason"] == "length"
    body = {"messages": [{"role": "user", "content": "hello " * 40}], "max_tokens": 3, "stream": True}
    req = urllib.request.Request(fixed.url + "/v1/chat/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        chunks = [json.loads(line[6:]) for line in r.read().decode().splitlines() if line.startswith("data: {")]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"} and chunks[0]["object"] == "chat.completion.chunk"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks).strip()
    code, text = raw(fixed.url, json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}).encode(), "/v1/chat/completions", timeout=10)
    assert code == 200 and json.loads(text)["choices"][0]["message"]["role"] == "assistant"


def test_sigterm_stops_every_process(tmp_path):
    s = start_server(EXAMPLES / "seed-fixed.yaml", tmp_path)
    pids = [w["pid"] for w in s.workers()]
    assert s.stop() == 0
    time.sleep(0.2)
    assert not [p for p in pids if alive(p)]
