"""Requests as vLLM's OpenAI server treats them, and client mistakes as 4xx OpenAI errors, never a 5xx."""

from __future__ import annotations

import json
import math

import pytest

from .conftest import complete, prompt, raw, variant

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small(serve, tmp_path_factory):
    """max-model-len 600, so "the rest of the context" is small enough to check."""
    tmp = tmp_path_factory.mktemp("small")
    return serve(variant(tmp, "small.yaml", **{"VllmWorker.max-model-len": 600, "PrefillWorker.max-model-len": 600}))


@pytest.mark.parametrize("body, status, fragment", [
    (b'{"prompt": "\\ud800 lone surrogate", "max_tokens": 2}', 400, "not valid unicode"),
    (b'{"prompt": [1, 2, -1], "max_tokens": 2}', 400, "token ids must be in [0, 256)"),
    (b'{"prompt": [1, 4294967296], "max_tokens": 2}', 400, "token ids"),
    (b'{"prompt": [1, 300], "max_tokens": 2}', 400, "token ids"),
    (b'{"prompt": "x", "max_tokens": 2, "logprobs": 5, "echo": true, "best_of": 2}', 400, "unsupported parameters: best_of, echo"),
    (b'{"prompt": "x", "max_tokens": 2, "logprobs": 21}', 400, "logprobs"),
    (b'{"prompt": "x", "max_tokens": 2, "presence_penalty": 2.5}', 400, "presence_penalty"),
    (b'{"prompt": "x", "max_tokens": 2, "tools": [{"type": "function"}]}', 400, "unsupported parameter: tools"),
    (b'{"prompt": "x", "max_tokens": 2, "response_format": {"type": "json_object"}}', 400, "response_format"),
    (b'{"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}', 400, "stop takes up to 4"),
    (b'\xff\xfe not json', 400, "not valid JSON"),
    (b'{"prompt": "x", "model": "other"}', 404, "not served here"),
])
def test_client_mistakes_are_openai_4xx(small, body, status, fragment):
    code, text = raw(small.url, body)
    assert code == status, text
    err = json.loads(text)["error"]
    assert fragment in err["message"] and err["type"] == "invalid_request_error"


def test_http_errors_are_openai_shaped_and_counted(small):
    before = small.metric("disagg_request_errors_total", code="404")
    code, text = raw(small.url, None, path="/v1/nothing", method="GET")
    assert code == 404 and json.loads(text)["error"]["code"] == 404
    code, text = raw(small.url, None, path="/v1/completions", method="GET")
    assert code == 405 and "error" in json.loads(text)
    code, text = raw(small.url, b'{"prompt": "' + b"x" * (17 * 2**20) + b'"}')
    assert code == 413 and "too large" in json.loads(text)["error"]["message"]
    assert small.metric("disagg_request_errors_total", code="404") == before + 1


def test_unset_max_tokens_is_the_rest_of_the_context(small):
    code, r = complete(small, {"prompt": prompt(500)})
    assert code == 200 and r["usage"]["completion_tokens"] == 100  # 600 - 500, as vLLM does


def test_stop_strings_end_the_output_before_them(small):
    code, full = complete(small, {"prompt": prompt(200), "max_tokens": 12})
    words = full["choices"][0]["text"].split(" ")
    stop = " " + words[3]
    code, cut = complete(small, {"prompt": prompt(200), "max_tokens": 12, "stop": stop})
    assert cut["choices"][0]["finish_reason"] == "stop"
    assert cut["choices"][0]["text"] == full["choices"][0]["text"].split(stop)[0]


def test_seed_changes_sampled_output_reproducibly_and_greedy_ignores_it(small):
    base = {"prompt": prompt(200, "seeded"), "max_tokens": 8}
    greedy = [complete(small, {**base, "seed": s})[1]["choices"][0]["text"] for s in (1, 2)]
    assert greedy[0] == greedy[1]  # temperature 0: the seed does not matter
    sampled = [complete(small, {**base, "temperature": 0.8, "seed": s})[1]["choices"][0]["text"] for s in (1, 1, 2)]
    assert sampled[0] == sampled[1] != sampled[2]


def test_chat_content_parts_and_usage_in_the_stream(small):
    code, r = complete(small, {"messages": [{"role": "user", "content": [{"type": "text", "text": "hello "}, {"type": "text", "text": "there"}]}], "max_tokens": 3},
                       path="/v1/chat/completions")
    assert code == 200 and r["usage"]["completion_tokens"] == 3
    code, text = raw(small.url, json.dumps({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}).encode(),
                     path="/v1/chat/completions")
    assert code == 400 and "only text content parts" in text
    code, text = raw(small.url, json.dumps({"prompt": prompt(50), "max_tokens": 4, "stream": True, "stream_options": {"include_usage": True}}).encode())
    events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    usage = json.loads(events[-2])
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 4


def test_cache_salt_isolates_prefix_hits(serve, tmp_path):
    s = serve(variant(tmp_path, "salt.yaml", **{"VllmWorker.enable-prefix-caching": True, "VllmWorker.block-size": 16, "PrefillWorker.block-size": 16,
                                                "Processor.block-size": 16, "VllmWorker.remote-prefill": False}))
    shared = prompt(192, "tenant-a-secret-prefix")
    assert complete(s, {"prompt": shared + " one", "max_tokens": 1, "cache_salt": "a"})[1]["disagg"]["cached_tokens"] == 0
    assert complete(s, {"prompt": shared + " two", "max_tokens": 1, "cache_salt": "a"})[1]["disagg"]["cached_tokens"] == 192
    other = complete(s, {"prompt": shared + " three", "max_tokens": 1, "cache_salt": "b"})[1]
    assert other["disagg"]["cached_tokens"] == 0  # another tenant learns nothing about the first one's prompt


def test_a_prompt_whose_kv_cannot_fit_is_refused_up_front_and_prefilled_locally(serve, tmp_path):
    s = serve(variant(tmp_path, "big.yaml", **{"VllmWorker.max-model-len": 70000, "PrefillWorker.max-model-len": 70000}))
    code, r = complete(s, {"prompt": prompt(64000, "big"), "max_tokens": 1}, timeout=60)  # 64k tokens x 8 KiB: 500 MiB > the 256 MiB arena
    assert code == 200 and r["disagg"]["route"] == "local" and r["disagg"]["reason"] == "prefill_failed"
    assert s.get("/health")["status"] == "ok"


def test_logprobs_are_served_with_the_mock_models_documented_values(small):
    code, r = complete(small, {"prompt": prompt(100, "lp"), "max_tokens": 5, "logprobs": 2})
    assert code == 200, r
    lp, text = r["choices"][0]["logprobs"], r["choices"][0]["text"]
    assert "".join(lp["tokens"]) == text and len(lp["tokens"]) == 5
    assert lp["text_offset"] == [sum(len(t) for t in lp["tokens"][:i]) for i in range(5)]
    # The mock model (mock_engine.step_distribution): the emitted word has probability ~1/2, the next ~1/4.
    assert all(abs(v - math.log(0.5)) < 1e-6 for v in lp["token_logprobs"])
    for tok, top in zip(lp["tokens"], lp["top_logprobs"]):
        assert len(top) == 2 and top[tok] == max(top.values()) and abs(min(top.values()) - math.log(0.25)) < 1e-6
    code, c = complete(small, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "logprobs": True, "top_logprobs": 1},
                       path="/v1/chat/completions")
    content = c["choices"][0]["logprobs"]["content"]
    assert "".join(e["token"] for e in content) == c["choices"][0]["message"]["content"]
    assert all(e["top_logprobs"][0]["token"] == e["token"] and e["bytes"] == list(e["token"].encode()) for e in content)
    code, text = raw(small.url, json.dumps({"prompt": prompt(100, "lp"), "max_tokens": 5, "logprobs": 2, "stream": True}).encode())
    chunks = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    streamed = [t for ch in chunks if ch["choices"][0]["logprobs"] for t in ch["choices"][0]["logprobs"]["tokens"]]
    assert streamed == lp["tokens"]


def test_logprobs_stop_with_the_text_a_stop_string_cuts(small):
    body = {"prompt": prompt(150, "lpstop"), "max_tokens": 10, "logprobs": 0}
    full = complete(small, body)[1]["choices"][0]
    stop = full["logprobs"]["tokens"][4]
    cut = complete(small, {**body, "stop": stop})[1]["choices"][0]
    assert cut["finish_reason"] == "stop" and "".join(cut["logprobs"]["tokens"]).startswith(cut["text"])
    assert len(cut["logprobs"]["tokens"]) <= 5


def test_penalties_change_repeated_words_deterministically(small):
    base = {"prompt": prompt(200, "pen"), "max_tokens": 40}
    plain = complete(small, base)[1]["choices"][0]["text"].split()
    assert len(set(plain)) < len(plain)  # 40 words from a 38-word vocabulary repeat
    penalised = [complete(small, {**base, "presence_penalty": 2.0})[1]["choices"][0]["text"] for _ in range(2)]
    assert penalised[0] == penalised[1]
    words = penalised[0].split()
    assert len(set(words)) > len(set(plain))  # a word already said is pushed down: more distinct words
    freq = complete(small, {**base, "frequency_penalty": 2.0})[1]["choices"][0]["text"].split()
    assert len(set(freq)) > len(set(plain))
