"""One key -> flag conversion for the whole doctor: a config key, a command-line word and a setting agree."""

from __future__ import annotations

import pytest

from disagg.doctor.context import LintOptions
from disagg.doctor.engine import lint_text
from disagg.doctor.registry import default_registry
from disagg.schemas.cmdline import flag_name
from disagg.schemas.engines import setting_of


@pytest.mark.parametrize("key, flag", [("remote_prefill", "remote-prefill"), ("--remote_prefill", "remote-prefill"),
                                       ("remote-prefill", "remote-prefill"), ("--tp", "tp")])
def test_every_spelling_of_a_key_is_one_flag(key, flag):
    assert flag_name(key) == flag


@pytest.mark.parametrize("key, setting", [("tensor-parallel-size", "tp"), ("tensor_parallel_size", "tp"), ("--page-size", "block_size"),
                                          ("enable-chunked-prefill", "enable_chunked_prefill"), ("max_local_prefill_length", "max_local_prefill_length")])
def test_a_key_fills_the_setting_its_flag_fills(key, setting):
    assert setting_of(key) == setting


def _worker(text: str, name: str):
    result = lint_text("case.yaml", text, [r for r in default_registry() if not r.live], LintOptions())
    return next(w for w in result.deployment.workers if w.name == name), result


def test_a_v0_key_of_the_wrong_type_makes_its_setting_unknown_whatever_the_spelling():
    # `tensor-parallel-size` fills the setting `tp`: a value the worker rejects (DG402) must not be read by other rules
    for key in ("tensor-parallel-size", "tensor_parallel_size"):
        w, result = _worker(f"VllmWorker:\n  {key}: [2]\n  remote-prefill: true\nPrefillWorker: {{}}\n", "VllmWorker")
        assert "DG402" in {f.code for f in result.findings}
        assert not w.settings["tp"].known, w.settings["tp"]


def test_a_connectors_list_that_is_no_list_is_not_read_as_one():
    from disagg.schemas.kv_config import connector_uses

    [use] = connector_uses({"kv_connector": "MultiConnector", "kv_connector_extra_config": {"connectors": 3}})
    assert use.name == "MultiConnector" and use.children == ()
