"""The runtime's parts on their own: the mock engine, the KV arena and store, the plan, the serve command's errors."""

from __future__ import annotations

import numpy as np
import pytest

from disagg.runtime.kv import Arena, KVStore
from disagg.runtime.mock_engine import BlockManager, Timing, kv_checksum, kv_for_tokens, output_tokens, tokenize
from disagg.runtime.plan import ModelShape, PlanError, load_plan

from .conftest import EXAMPLES

SHAPE = ModelShape()


def test_kv_size_is_what_a_model_of_this_shape_produces():
    assert SHAPE.kv_bytes_per_token == 8 * 2 * 4 * 64 * 2
    assert kv_for_tokens(tokenize("x" * 200), 0, SHAPE).size == 200 * SHAPE.kv_bytes_per_token


def test_output_depends_on_the_kv_so_wrong_kv_gives_a_different_answer():
    a = kv_for_tokens(tokenize("the prompt the user sent"), 0, SHAPE)
    b = kv_for_tokens(tokenize("another prompt entirely!"), 0, SHAPE)
    assert output_tokens(kv_checksum(a), 16) != output_tokens(kv_checksum(b), 16)  # negative control
    assert output_tokens(kv_checksum(a), 16) == output_tokens(kv_checksum(a.copy()), 16)
    flipped = a.copy()
    flipped[12345] ^= 1
    assert kv_checksum(flipped) != kv_checksum(a)


def test_kv_is_the_same_whether_computed_whole_or_as_prefix_plus_suffix():
    tokens = tokenize("a" * 100 + "b" * 60)
    whole = kv_for_tokens(tokens, 0, SHAPE)
    prefix, suffix = kv_for_tokens(tokens[:64], 0, SHAPE), kv_for_tokens(tokens, 64, SHAPE)
    assert np.array_equal(np.concatenate([prefix, suffix]), whole)
    assert kv_checksum(suffix, kv_checksum(prefix)) == kv_checksum(whole)


def test_prefix_cache_matches_full_blocks_and_leaves_one_token_to_compute():
    bm = BlockManager(num_blocks=100, block_size=16, prefix_caching=True)
    tokens = tokenize("z" * 64)
    kv = kv_for_tokens(tokens, 0, SHAPE)
    assert bm.match_prefix(tokens) == (0, 0)
    bm.remember(tokens, kv, 0, 0, SHAPE)
    cached, crc = bm.match_prefix(tokens)
    assert cached == 48  # 64 is fully cached, but the last block is recomputed so a token is left
    assert crc == kv_checksum(kv[: 48 * SHAPE.kv_bytes_per_token])
    longer = tokens + tokenize("tail")
    assert bm.match_prefix(longer)[0] == 64
    assert BlockManager(100, 16, prefix_caching=False).match_prefix(tokens) == (0, 0)


def test_block_accounting():
    bm = BlockManager(num_blocks=4, block_size=16, prefix_caching=False)
    assert bm.can_allocate(64) and not bm.can_allocate(65)
    n = bm.allocate(33)
    assert n == 3 and bm.usage == 0.75
    bm.free(n)
    assert bm.used == 0


def test_timing_model():
    t = Timing()
    assert t.prefill_seconds(0) == 0 and t.prefill_seconds(200) == pytest.approx(0.002 + 200 * 0.00002)
    assert t.decode_step_seconds(8) > t.decode_step_seconds(1)


def test_arena_allocates_and_coalesces():
    a = Arena(1000)
    x, y, z = a.allocate(300), a.allocate(300), a.allocate(300)
    assert (x, y, z) == (0, 300, 600) and a.allocate(200) is None
    a.release(y, 300)
    a.release(x, 300)
    assert a.allocate(600) == 0 and a.used == 900


def test_store_expires_what_nobody_reads():
    store = KVStore(Arena(1 << 20), ttl_seconds=5)
    kv_id, entry = store.put(np.ones(1000, dtype=np.uint8), 1)
    assert store.expire(now=entry.created + 1) == 0
    assert store.expire(now=entry.created + 6) == 1 and store.expired == 1 and store.get(kv_id) is None
    assert store.arena.used == 0


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
