"""The known-answer canary (`--probe`, DG507): the runtime's per-request route, the `kv_stale` fault that gives a wrong
answer with HTTP 200 and no counter, and the doctor comparing the P/D answer with a local prefill or a reference."""

from __future__ import annotations

import json
import secrets
import urllib.request

import pytest
from serving.conftest import EXAMPLES, complete, variant

from disagg.doctor.live.canary import divergence, tie_gap
from disagg.schemas.routing import RouteReason, RoutingPolicy, override_route, should_prefill_remote
from live.test_live_e2e import doctor, live, server  # noqa: F401 - the fixture


def test_divergence_by_token_and_by_text():
    a = {"tokens": ["a", " b", " c"], "text": "a b c"}
    assert divergence(a, {"tokens": ["a", " b", " c"], "text": "a b c"}) == (None, "tokens")
    assert divergence(a, {"tokens": ["a", " x", " c"]}) == (1, "tokens")
    assert divergence(a, {"tokens": ["a", " b"]}) == (2, "tokens")  # one answer stopped early
    assert divergence({"text": "the cache"}, {"text": "the queue"}) == (4, "text")  # no logprobs: characters


def test_tie_gap_is_the_smaller_margin_of_the_two_answers():
    a = {"tokens": [" x"], "token_logprobs": [-0.70], "top_logprobs": [{" x": -0.70, " y": -0.72}]}
    b = {"tokens": [" y"], "token_logprobs": [-0.69], "top_logprobs": [{" y": -0.69, " x": -1.9}]}
    assert tie_gap(a, b, 0) == pytest.approx(0.02)  # in a's own distribution the two were nearly equal
    far = {"tokens": [" z"], "token_logprobs": [-0.1], "top_logprobs": [{" z": -0.1, " w": -3.0}]}
    assert tie_gap(far, {**b, "top_logprobs": [{" y": -0.69, " q": -2.0}]}, 0) == pytest.approx(1.31)  # absent: below the lowest shown
    assert tie_gap({"tokens": ["a"], "text": "a"}, b, 0) is None  # no logprobs: unknown


def test_override_route_grants_local_always_and_remote_only_where_it_can_run():
    on = RoutingPolicy(remote_prefill=True, conditional_disagg=True, max_local_prefill_length=100, max_prefill_queue_size=2)
    short = should_prefill_remote(50, 0.0, 0, on)
    assert override_route("remote", short, 0, on) == (short._replace(remote=True, reason=RouteReason.OVERRIDE), None)
    long = should_prefill_remote(500, 0.0, 0, on)
    assert override_route("local", long, 0, on)[0] == long._replace(remote=False, reason=RouteReason.OVERRIDE)
    full = should_prefill_remote(500, 0.0, 2, on)  # queue_full: the cap protects the prefill workers
    assert override_route("remote", full, 2, on) == (full, "the prefill queue is full (2 >= max-prefill-queue-size 2)")
    off = should_prefill_remote(500, 0.0, 0, RoutingPolicy())
    assert override_route("remote", off, 0, RoutingPolicy()) == (off, "remote prefill is off in this deployment")
    assert override_route("remote", long, 0, on, prefill_workers_alive=False)[1] == "no prefill worker is alive"


def _faults(url: str, **faults) -> dict:
    req = urllib.request.Request(url + "/debug/faults", data=json.dumps(faults).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def _metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


@pytest.mark.slow
def test_route_override_is_honoured_counted_and_explained(server):  # noqa: F811
    s = server(EXAMPLES / "seed-fixed.yaml")
    body = {"prompt": "a short prompt", "max_tokens": 4}  # 14 tokens, threshold 10: the rule says remote
    _, remote = complete(s, {**body, "disagg": {"route": "remote"}})
    _, local = complete(s, {**body, "disagg": {"route": "local"}})
    assert remote["disagg"]["route"] == "remote" and remote["disagg"]["reason"] == "override"
    assert local["disagg"]["route"] == "local" and local["disagg"]["override"] == {"route": "local", "honoured": True}
    assert remote["choices"][0]["text"] == local["choices"][0]["text"]  # healthy: the same KV either way
    status, bad = complete(s, {**body, "disagg": {"route": "sideways"}})
    assert status == 400 and "disagg.route" in bad["error"]["message"]


@pytest.mark.slow
def test_remote_override_is_refused_where_remote_prefill_is_off(server, tmp_path):  # noqa: F811
    s = server(variant(tmp_path, "agg.yaml", **{"VllmWorker.remote-prefill": False}))
    status, out = complete(s, {"prompt": "a short prompt", "max_tokens": 2, "disagg": {"route": "remote"}})
    assert status == 200 and out["disagg"]["route"] == "local" and out["disagg"]["reason"] == "disabled"
    assert out["disagg"]["override"] == {"route": "remote", "honoured": False, "why": "remote prefill is off in this deployment"}


@pytest.mark.slow
def test_kv_stale_is_dg507_while_no_counter_moves(server):  # noqa: F811
    s = server(EXAMPLES / "seed-fixed.yaml", "--fault-injection")
    _faults(s.url, kv_stale=1)
    code, out = doctor(str(EXAMPLES / "seed-fixed.yaml"), "--live", s.url, "--probe", "--output-format", "json")
    assert code == 1, out
    [f] = live(out["findings"], "DG507")
    ev = f["evidence"]
    assert f["severity"] == "error" and ev["routes"] == ["remote", "local"]
    assert ev["tokens_pd"][ev["diverged_at"]] != ev["tokens_reference"][ev["diverged_at"]]
    assert ev["tokens_pd"][: ev["diverged_at"]] == ev["tokens_reference"][: ev["diverged_at"]]
    assert ev["answer_pd"] and ev["answer_reference"] and ev["answer_pd"] != ev["answer_reference"]
    assert out["summary"]["kv_failures"] == 0 and not live(out["findings"], "DG503")  # a 200 with the wrong answer: no counter shows it
    assert _metric(s.url, "disagg_kv_transfer_failures_total") == 0
    assert _faults(s.url)["decode-0"]["kv_stale"] == 0  # the fault was used, once


@pytest.mark.slow
def test_healthy_deployment_has_no_dg507(server):  # noqa: F811
    s = server(EXAMPLES / "seed-fixed.yaml")
    code, out = doctor(str(EXAMPLES / "seed-fixed.yaml"), "--live", s.url, "--probe", "--output-format", "json")
    assert code == 0, out
    assert not live(out["findings"], "DG507")
    c = out["probe"]["canary"]
    assert c["compared"] and c["diverged_at"] is None and [a["route"] for a in c["answers"]] == ["remote", "local"]
    assert c["answers"][0]["tokens"] == c["answers"][1]["tokens"] and len(c["answers"][0]["tokens"]) == c["max_tokens"]
    assert out["summary"]["canary"] == "match"
    assert out["summary"]["requests"] == 1  # the canary's two requests chose their route: not routing evidence


@pytest.mark.slow
def test_reference_endpoint_is_compared_instead(server, tmp_path):  # noqa: F811
    # The mock model's weights are keyed by the run's secret: two runs are the same model only when they share it.
    env = {"DISAGG_RUN_SECRET": secrets.token_hex(32)}
    from serving.conftest import start_server

    pd = start_server(EXAMPLES / "seed-fixed.yaml", tmp_path / "pd", "--fault-injection", env=env)
    agg = start_server(variant(tmp_path, "agg.yaml", **{"VllmWorker.remote-prefill": False}), tmp_path / "agg", env=env)
    try:
        code, out = doctor("--live", pd.url, "--probe", "--reference", agg.url, "--output-format", "json")
        assert code == 0, out
        c = out["probe"]["canary"]
        assert c["compared"] and c["diverged_at"] is None and [a["route"] for a in c["answers"]] == ["remote", "local"]
        _faults(pd.url, kv_stale=2)  # the route probe's request takes the first (the last KV was this canary's own), the canary the second
        code, out = doctor("--live", pd.url, "--probe", "--reference", agg.url, "--output-format", "json")
        assert code == 1, out
        [f] = live(out["findings"], "DG507")
        assert "the reference" in f["message"] and f["evidence"]["routes"] == ["remote", "local"]
    finally:
        pd.stop()
        agg.stop()


def test_reference_needs_probe():
    code, out = doctor("--live", "http://127.0.0.1:9", "--reference", "http://127.0.0.1:9")
    assert code == 2 and "--reference names the endpoint --probe's canary compares with" in out
