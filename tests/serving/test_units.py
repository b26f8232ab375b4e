"""The runtime's parts on their own: the mock engine, the KV arena and store, the plan, the serve command's errors."""

from __future__ import annotations

import numpy as np
import pytest

from disagg.runtime.kv import Arena, KVTransferError, check_handle, handle_mac
from disagg.runtime.mock_engine import BlockManager, Timing, output_tokens, tokenize
from disagg.runtime.mock_kv import KVLayout
from disagg.runtime.plan import ModelShape, PlanError, load_plan

from .conftest import EXAMPLES

SHAPE = ModelShape()
LAYOUT = KVLayout(SHAPE, b"secret of this run")


def kv(tokens, start=0):
    out = np.zeros(LAYOUT.nbytes(len(tokens) - start), dtype=np.uint8)
    LAYOUT.fill(out, tokens, start)
    return out


def test_kv_size_is_what_a_model_of_this_shape_produces():
    assert SHAPE.kv_bytes_per_token == 8 * 2 * 4 * 64 * 2 == LAYOUT.row_bytes
    assert kv(tokenize("x" * 200)).size == 200 * SHAPE.kv_bytes_per_token
    assert KVLayout(ModelShape(layers=1, kv_heads=1, head_dim=3, dtype_bytes=1), b"k").row_bytes == 8  # rows padded to 8 bytes


def test_the_checksum_of_the_bytes_is_the_one_made_from_the_tokens_and_any_change_shows():
    tokens = tokenize("the prompt the user sent")
    data = kv(tokens)
    assert LAYOUT.verify(data, 0) == LAYOUT.checksum(tokens)
    other = kv(tokenize("another prompt entirely!"))
    assert LAYOUT.verify(other, 0) != LAYOUT.verify(data, 0)  # negative control
    flipped = data.copy()
    flipped[12345] ^= 1
    assert LAYOUT.verify(flipped, 0) != LAYOUT.checksum(tokens)
    swapped = data.copy().view(np.uint64).reshape(len(tokens), -1)
    swapped[[0, 1]] = swapped[[1, 0]]
    assert LAYOUT.verify(swapped.view(np.uint8).reshape(-1), 0) != LAYOUT.checksum(tokens)  # positions matter


def test_the_checksum_is_keyed_by_the_run_secret():
    tokens = tokenize("same prompt, other run")
    assert KVLayout(SHAPE, b"another secret").checksum(tokens) != LAYOUT.checksum(tokens)
    assert np.array_equal(kv(tokens), np.frombuffer(bytes(kv(tokens)), dtype=np.uint8))  # the bytes are the model's, not the key's


def test_output_depends_on_the_kv_so_wrong_kv_gives_a_different_answer():
    a, b = LAYOUT.checksum(tokenize("the prompt the user sent")), LAYOUT.checksum(tokenize("another prompt entirely!"))
    assert output_tokens(a, 16) != output_tokens(b, 16) and output_tokens(a, 16) == output_tokens(a, 16)


def test_kv_is_the_same_whether_computed_whole_or_as_prefix_plus_suffix():
    tokens = tokenize("a" * 100 + "b" * 60)
    whole = kv(tokens)
    assert np.array_equal(np.concatenate([kv(tokens[:64]), kv(tokens, 64)]), whole)
    assert (LAYOUT.checksum(tokens, 0, 64) + LAYOUT.checksum(tokens, 64)) % 2**64 == LAYOUT.checksum(tokens)
    assert LAYOUT.verify(kv(tokens, 64), 64) == LAYOUT.checksum(tokens, 64)
    assert LAYOUT.prefix_checksums(tokens, [16, 64]) == [LAYOUT.checksum(tokens, 0, 16), LAYOUT.checksum(tokens, 0, 64)]


def test_prefix_cache_matches_full_blocks_leaves_one_token_and_isolates_salts():
    bm = BlockManager(num_blocks=100, block_size=16, prefix_caching=True, layout=LAYOUT)
    tokens = tokenize("z" * 64)
    assert bm.match_prefix(tokens) == (0, 0)
    bm.remember(tokens)
    cached, crc = bm.match_prefix(tokens)
    assert cached == 48  # 64 is fully cached, but the last block is recomputed so a token is left
    assert crc == LAYOUT.checksum(tokens, 0, 48)
    assert bm.match_prefix(tokens + tokenize("tail"))[0] == 64
    assert bm.match_prefix(tokens + tokenize("tail"), salt="tenant-b") == (0, 0)  # another salt shares nothing
    bm.remember(tokens, salt="tenant-b")
    assert bm.match_prefix(tokens + tokenize("tail"), salt="tenant-b")[0] == 64
    assert BlockManager(100, 16, prefix_caching=False, layout=LAYOUT).match_prefix(tokens) == (0, 0)


def test_block_accounting():
    bm = BlockManager(num_blocks=4, block_size=16, prefix_caching=False, layout=LAYOUT)
    assert bm.can_allocate(64) and not bm.can_allocate(65)
    n = bm.allocate(33)
    assert n == 3 and bm.usage == 0.75
    bm.free(n)
    assert bm.used == 0


def test_timing_model():
    t = Timing()
    assert t.prefill_seconds(0) == 0 and t.prefill_seconds(200) == pytest.approx(0.002 + 200 * 0.00002)
    assert t.decode_step_seconds(8) > t.decode_step_seconds(1)
    assert Timing(0, 0, 0, 0).free and not t.free


def test_arena_allocates_coalesces_and_zeroes_what_it_frees():
    a = Arena(1000)
    x, y, z = a.allocate(300), a.allocate(300), a.allocate(300)
    assert (x, y, z) == (0, 300, 600) and a.allocate(200) is None
    a.view(y, 300)[:] = 7
    a.release(y, 300)
    assert not a.view(y, 300).any()  # nobody reads another request's KV out of reused memory
    a.release(x, 300)
    assert a.allocate(600) == 0 and a.used == 900


def test_a_receive_region_is_not_zeroed_and_what_an_earlier_request_left_there_fails_the_check():
    """The decode side's arena keeps what a released region held (zeroing it cost ~0.3 ms per 8,000-token request).
    A READ that delivered nothing, or only part, or another prompt's or another position's rows, leaves bytes whose
    keyed checksum is not the handle's, so the decode worker refuses them (worker.py `_pull_kv`) and prefills
    locally; only the same prompt's own KV at the same positions passes, and that is the right KV."""
    first = tokenize("the earlier request, with its own prompt")
    second = tokenize("the request now being served, another one")[: len(first)]
    assert len(second) == len(first) and second != first
    arena = Arena(1 << 20, scrub=False)
    n = LAYOUT.nbytes(len(first))
    off = arena.allocate(n)
    arena.view(off, n)[:] = kv(first)
    arena.release(off, n)
    assert arena.allocate(n) == off and np.array_equal(arena.view(off, n), kv(first))  # reused as it was left
    want = LAYOUT.checksum(second)
    region = arena.view(off, n)
    assert LAYOUT.verify(region, 0) != want  # the READ wrote nothing: the earlier request's KV
    region[: n // 2] = kv(second)[: n // 2]
    assert LAYOUT.verify(region, 0) != want  # a short READ: the rest is stale
    region[:] = kv(second)
    assert LAYOUT.verify(region, 0) == want  # all of it arrived (the positive control)
    assert LAYOUT.verify(region[LAYOUT.row_bytes :], 1) != LAYOUT.checksum(second, 0, len(second) - 1)  # rows one position off
    arena.release(off, n)
    assert np.array_equal(arena.view(off, n), kv(second))  # not zeroed: this side never hands its memory to anyone
    scrubbed = Arena(1 << 20)
    scrubbed.view(0, n)[:] = kv(second)
    scrubbed.release(scrubbed.allocate(n), n)
    assert not scrubbed.view(0, n).any()  # the prefill side's arena still zeroes what ends


def test_only_the_side_that_is_read_runs_a_nixl_progress_thread(monkeypatch):
    """The reader progresses its own READs; a progress thread on its UCX worker only contends with it for the
    worker's lock (kv.py `NixlTransport`)."""
    from disagg.runtime import kv as kv_module

    api = _FakeNixlApi(_Config)
    monkeypatch.setattr(kv_module, "nixl_api", lambda: api)
    reader = kv_module.NixlTransport("decode-0", Arena(4096, scrub=False), serves_reads=False)
    served = kv_module.NixlTransport("prefill-0", Arena(4096))
    (_, reader_conf), (served_config, served_conf) = api.made
    assert reader_conf["enable_prog_thread"] is False and not reader.event_driven
    assert served_conf["enable_prog_thread"] and served.event_driven and served_config.pthrDelay == kv_module.PROGRESS_WAKE_US


def test_kv_handles_are_capabilities():
    secret = b"run secret"
    handle = {"kv_id": "ab" * 16, "worker_id": "prefill-0", "request": "r1", "start": 0, "tokens": 200, "length": 1638400, "checksum": 12345}
    handle["mac"] = handle_mac(secret, handle)
    check_handle(secret, handle, "r1")
    for forged in ({**handle, "checksum": 1}, {**handle, "kv_id": "cd" * 16}, {**handle, "worker_id": "prefill-1"}, {**handle, "mac": "0" * 32}):
        with pytest.raises(KVTransferError):
            check_handle(secret, forged, "r1")
    with pytest.raises(KVTransferError):
        check_handle(secret, handle, "r2")  # bound to its request
    with pytest.raises(KVTransferError):
        check_handle(b"another run", handle, "r1")


def test_plan_follows_the_config(tmp_path):
    plan = load_plan(str(EXAMPLES / "disagg-router.yaml"))
    assert (plan.decode_workers, plan.prefill_workers, plan.block_size, plan.router) == (2, 2, 64, "kv")
    assert plan.policy.remote_prefill and plan.policy.max_local_prefill_length == 512 and plan.policy.max_prefill_queue_size == 2


def test_plan_refuses_wrong_types_with_their_location(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("VllmWorker:\n  remote-prefill: yes please\nPrefillWorker: {}\n")
    with pytest.raises(PlanError) as exc:
        load_plan(str(path))
    assert f"{path}:2:19:" in exc.value.problems[0]


def test_plan_reads_options_as_dynamo_did_and_notes_typos(tmp_path):
    path = tmp_path / "snake.yaml"
    path.write_text("VllmWorker:\n  remote_prefill: true\nPrefillWorker: {}\n")
    assert load_plan(str(path)).policy.remote_prefill  # vLLM's FlexibleArgumentParser reads remote_prefill as remote-prefill
    path = tmp_path / "typo.yaml"
    path.write_text("VllmWorker:\n  remote-prefil: true\nPrefillWorker: {}\n")
    plan = load_plan(str(path))
    assert not plan.policy.remote_prefill  # the misspelt key does nothing (Dynamo's worker would not start)...
    assert any(":2:3:" in n and "remote-prefill" in n for n in plan.notes)  # ...and the runtime says so


def test_serve_command_errors(cli, write):
    r = cli("serve", write("VllmWorker:\n  max-local-prefill-length: ten\n"))
    assert r.code == 2 and ":2:29:" in r.err and "disagg doctor" in r.err
    r = cli("serve", EXAMPLES / "seed-fixed.yaml", "--engine", "vllm")
    assert r.code == 2 and "--engine vllm" in r.err
    r = cli("serve", write("- not a config\n"))
    assert r.code == 2
    r = cli("serve", write("#!/bin/bash\nvllm serve Qwen/Qwen3-0.6B --kv-transfer-config '{}' &\n", "start.sh"))
    assert r.code == 2 and "a shell script" in r.err and "disagg doctor" in r.err and "YAML" not in r.err.split("(")[0]


def test_stream_text_chunks_are_the_chunks_openai_clients_parse():
    import json

    from disagg.runtime.openai_api import stream_chunk, text_chunk_encoder

    for chat in (False, True):
        encode = text_chunk_encoder("cmpl-1", "tiny", chat, 1700000000)
        for text in ("plain", ' "quoted" \\ back', "új\nline", "\u0000"):
            event = encode(text)
            assert event.startswith(b"data: ") and event.endswith(b"\n\n")
            assert json.loads(event[6:]) == stream_chunk("cmpl-1", "tiny", text, None, chat, 1700000000)


def test_ports_chosen_for_later_are_outside_the_kernels_ephemeral_range(monkeypatch):
    """A port handed to a process that binds it later (vLLM's HTTP port and NIXL side channel) must not be one the
    kernel can give meanwhile to any bind(0) or outgoing connection: CI lost a vLLM engine to exactly that."""
    import socket

    from disagg.runtime import ports

    start = ports._ephemeral_start()
    chosen = {ports.free_port() for _ in range(50)}
    assert all(ports._LOWEST <= p < start for p in chosen), sorted(chosen)
    assert len(chosen) > 40  # spread out, so two choices rarely meet
    for p in list(chosen)[:5]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))  # and free right now
    monkeypatch.setattr(ports, "_ephemeral_start", lambda: ports._LOWEST + 10)  # no room below: any free port
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports.free_port()))


class _FakeNixlApi:
    """NIXL 1.5's Python API as `_event_driven_agent` meets it: a binding config type that the API's agent
    constructor fills in, pthrDelay hard-coded to 0 (a spinning progress thread)."""

    def __init__(self, config_type):
        self.nixlBind = type("bind", (), {"nixlAgentConfig": config_type})()
        self.made: list[tuple[object, dict]] = []

    def nixl_agent_config(self, **kw):
        return kw

    def nixl_agent(self, name, conf):
        config = self.nixlBind.nixlAgentConfig()
        config.useProgThread = conf["enable_prog_thread"]
        config.pthrDelay = 0
        self.made.append((config, conf))
        return name


class _Config:
    pthrDelay = 0


class _FinalConfig(_Config):
    def __init_subclass__(cls, **kw):
        raise TypeError("not an acceptable base type")  # as a binding type that cannot be subclassed says


def test_nixl_progress_thread_waits_on_events_instead_of_spinning():
    from disagg.runtime.kv import PROGRESS_WAKE_US, _event_driven_agent

    api = _FakeNixlApi(_Config)
    agent, event_driven = _event_driven_agent(api, "prefill-0")
    config, conf = api.made[0]
    assert event_driven and conf["enable_prog_thread"] and config.useProgThread
    assert config.pthrDelay == PROGRESS_WAKE_US > 0  # the API's 0 (a spin) did not stick
    assert api.nixlBind.nixlAgentConfig is _Config  # the binding is as it was for anyone else


def test_a_nixl_build_that_does_not_allow_the_event_driven_thread_still_moves_kv():
    from disagg.runtime.kv import _event_driven_agent

    api = _FakeNixlApi(_FinalConfig)
    agent, event_driven = _event_driven_agent(api, "prefill-0")
    assert agent == "prefill-0" and not event_driven
    assert api.made[0][1]["enable_prog_thread"] is False  # no spinning thread: the prefill loop progresses NIXL
    assert api.nixlBind.nixlAgentConfig is _FinalConfig


def test_logprobs_of_tokens_with_no_text_at_the_end_are_kept_and_a_stop_string_still_cuts():
    from disagg.runtime.frontend.completions import LogprobTrack

    # vLLM sends a chunk of logprobs with no text for tokens that decode to nothing (the tiny model has many): such
    # tokens after the last text piece are still the answer's tokens
    track = LogprobTrack()
    for entries, piece in (([("a", -0.1, [])], "a"), ([("", -0.2, [])], None), ([("b", -0.3, [])], "b"), ([("", -0.4, []), ("", -0.5, [])], None)):
        track.add(entries)
        if piece is not None:
            track.text(piece)
    assert [e[1] for e in track.take_rest()[0]] == [-0.1, -0.2, -0.3, -0.4, -0.5]
    # a stop string that cut the text after "a": the tokens from the cut on are not returned
    track = LogprobTrack()
    for entries, piece in (([("a", -0.1, [])], "a"), ([("b", -0.3, [])], "b")):
        track.add(entries)
        track.text(piece)
    assert [e[1] for e in track.take(1)[0]] == [-0.1]


# What the router yields for "a", "b" and two trailing tokens that decode to no text, as the vLLM backend reads them
# (a chunk of logprobs with no text of its own; the tiny model has many).
NO_TEXT_TAIL = [("start", {"route": "local", "reason": "test"}), ("logprobs", [("a", -0.1, [])]), ("text", ("a", 1)),
                ("logprobs", [("b", -0.3, [])]), ("text", ("b", 1)), ("logprobs", [("", -0.4, []), ("", -0.5, [])]), ("end", "length")]


def _answer(events: list, body: dict) -> str:
    """`Completions.whole` or `.stream` over scripted router events, behind a loopback aiohttp server; the raw body."""
    import asyncio
    import time
    from types import SimpleNamespace

    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer
    from prometheus_client import CollectorRegistry

    from disagg.runtime.frontend.completions import Completions
    from disagg.runtime.metrics import FrontendMetrics
    from disagg.runtime.openai_api import CompletionRequest

    frontend = SimpleNamespace(plan=SimpleNamespace(served_model_name="m"), metrics=FrontendMetrics(CollectorRegistry()),
                               observe_piece=lambda arrived, last: time.perf_counter(), terminating=False)
    req = CompletionRequest.model_validate(body)

    async def scripted():
        for event in events:
            yield event

    async def handler(request: web.Request) -> web.StreamResponse:
        c, seen = Completions(frontend), {"status": 500, "info": {}, "first": None}
        if req.stream:
            return await c.stream(request, scripted(), "cmpl-1", False, time.perf_counter(), 3, req, {"any": False}, seen)
        return await c.whole(scripted(), "cmpl-1", False, time.perf_counter(), 3, req, seen)

    async def run() -> str:
        app = web.Application()
        app.router.add_post("/", handler)
        async with TestClient(TestServer(app)) as client:
            return await (await client.post("/")).text()

    return asyncio.run(run())


def test_a_streamed_answer_sends_the_logprobs_of_tokens_with_no_text_at_the_end():
    import json

    whole = json.loads(_answer(NO_TEXT_TAIL, {"prompt": "x", "logprobs": 0}))["choices"][0]["logprobs"]
    chunks = [json.loads(line[6:]) for line in _answer(NO_TEXT_TAIL, {"prompt": "x", "logprobs": 0, "stream": True}).splitlines()
              if line.startswith("data: {")]
    streamed = [ch["choices"][0]["logprobs"] for ch in chunks if ch["choices"][0]["logprobs"]]
    # one entry per generated token, as the whole answer has them (OpenAI: one logprob per token)
    assert [v for lp in streamed for v in lp["token_logprobs"]] == whole["token_logprobs"] == [-0.1, -0.3, -0.4, -0.5]
    assert [o for lp in streamed for o in lp["text_offset"]] == whole["text_offset"] == [0, 1, 2, 2]
    assert "".join(ch["choices"][0]["text"] for ch in chunks) == "ab" and chunks[-1]["choices"][0]["finish_reason"] == "length"
