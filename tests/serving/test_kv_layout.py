"""Workers compare KV layouts themselves: each decode worker checks the layout a prefill worker announces (in its
handshake and in every KV handle) and refuses KV it could not read, with the reason; no doctor rule is consulted."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from disagg.runtime.kv import KVTransferError, check_handle, handle_mac
from disagg.runtime.kv_layout import KVLayoutInfo, layout_of, refusal
from disagg.runtime.plan import load_plan

from .conftest import EXAMPLES, variant


def layouts(tmp_path, **changes) -> tuple[KVLayoutInfo, KVLayoutInfo]:
    plan = load_plan(str(variant(tmp_path, "v.yaml", **changes) if changes else EXAMPLES / "seed-fixed.yaml"))
    return layout_of(plan, "decode"), layout_of(plan, "prefill")


def test_workers_of_one_config_accept_each_other(tmp_path):
    d, p = layouts(tmp_path)
    assert d == p and d.block_size == 64 and d.model == "tiny" and d.connector == "DynamoNixlConnector"
    assert refusal(d, p) is None


@pytest.mark.parametrize("changes, reason", [
    ({"PrefillWorker.block-size": 32, "VllmWorker.block-size": 16}, "block_size"),
    ({"PrefillWorker.block-size": 16, "VllmWorker.block-size": 64}, "block_size"),  # Dynamo v0's connector: equal sizes only
    ({"PrefillWorker.model": "other-model"}, "model"),
    ({"PrefillWorker.dtype": "float16", "VllmWorker.dtype": "bfloat16"}, "dtype"),
    ({"PrefillWorker.kv-cache-dtype": "fp8"}, "dtype"),  # against the decode's auto: the model's dtype, never fp8
    ({"PrefillWorker.kv-cache-dtype": "fp8", "VllmWorker.kv-cache-dtype": "fp8_e5m2"}, "dtype"),
    ({"PrefillWorker.kv-cache-dtype": "bfloat16", "VllmWorker.dtype": "bfloat16"}, None),  # auto is bfloat16 here: the same
    ({"PrefillWorker.kv-cache-dtype": "fp8", "VllmWorker.kv-cache-dtype": "fp8"}, None),
    ({"PrefillWorker.dtype": "bf16", "VllmWorker.dtype": "bfloat16"}, None),  # one dtype, two spellings
    ({"PrefillWorker.tensor-parallel-size": 2}, "tp_ratio"),  # decode TP 1 is no multiple of 2
    ({"VllmWorker.tensor-parallel-size": 4, "PrefillWorker.tensor-parallel-size": 2}, None),
])
def test_the_decode_worker_refuses_what_it_could_not_read(tmp_path, changes, reason):
    d, p = layouts(tmp_path, **changes)
    got = refusal(d, p)
    assert (got[0] if got else None) == reason, got


def test_vllms_connector_splits_a_smaller_prefill_block_and_dynamos_does_not(tmp_path):
    nixl = '{"kv_connector":"NixlConnector","kv_role":"kv_both"}'
    d, p = layouts(tmp_path, **{"PrefillWorker.block-size": 16, "VllmWorker.block-size": 64, "PrefillWorker.kv-transfer-config": nixl,
                                "VllmWorker.kv-transfer-config": nixl})
    assert refusal(d, p) is None
    assert refusal(p, d)[0] == "block_size"  # a larger prefill block cannot be split


def test_a_handle_without_a_layout_is_refused_and_its_layout_cannot_be_altered(tmp_path):
    d, p = layouts(tmp_path)
    assert refusal(d, KVLayoutInfo.from_json(None))[0] == "no_layout"
    assert refusal(d, KVLayoutInfo.from_json({"model": "tiny"}))[0] == "no_layout"  # incomplete
    secret = b"run secret"
    handle = {"kv_id": "ab" * 16, "worker_id": "prefill-0", "request": "r1", "start": 0, "tokens": 10, "length": 81920, "checksum": 1,
              "layout": p.to_json()}
    handle["mac"] = handle_mac(secret, handle)
    check_handle(secret, handle, "r1")
    with pytest.raises(KVTransferError, match="forged_handle"):  # a relay cannot pass off KV of another layout as this one
        check_handle(secret, {**handle, "layout": {**p.to_json(), "block_size": 16}}, "r1")


def test_no_runtime_decision_reads_a_doctor_rule():
    runtime = Path(__file__).resolve().parents[2] / "runtime"
    hits = [f"{f.name}:{n}" for f in runtime.rglob("*.py") for n, line in enumerate(f.read_text().splitlines(), 1) if re.search(r"\bDG\d{3}\b", line)]
    assert hits == []


def test_the_plan_routes_with_the_policy_the_doctor_predicts_with(tmp_path):
    """One computation (schemas/policy.py) from the deployment model, for `disagg serve` and the doctor's rules."""
    from disagg.doctor.rules._helpers import routing_policy as doctors
    from disagg.schemas.policy import routing_policy

    assert doctors is routing_policy
    assert tuple(load_plan(str(EXAMPLES / "seed-broken.yaml")).policy) == (False, True, 1000, 3)
    assert tuple(load_plan(str(EXAMPLES / "seed-fixed.yaml")).policy) == (True, True, 10, 3)
    config = tmp_path / "common.yaml"
    config.write_text("Common:\n  max-local-prefill-length: 77\n  remote-prefill: true\n"
                      "VllmWorker:\n  model: tiny\n  common-configs: [max-local-prefill-length, remote-prefill]\n  max-prefill-queue-size: 5\n"
                      "PrefillWorker:\n  model: tiny\n")
    assert tuple(load_plan(str(config)).policy) == (True, False, 77, 5)  # Common keys pulled in by common-configs
