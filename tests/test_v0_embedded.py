"""A Dynamo v0 service config passed to a DynamoGraphDeployment as a JSON string (DYN_DEPLOYMENT_CONFIG) is what the
v0 workers read: `remote-prefill: false` in it turns remote prefill off as in a v0 file (DG101), and since the
config is a string inside the manifest, fixes say what to change rather than edit the manifest."""

from __future__ import annotations

import json

import yaml

from disagg.doctor.context import LintOptions
from disagg.doctor.engine import lint_text
from disagg.doctor.registry import default_registry

RULES = [r for r in default_registry() if not r.live]


def _dgd(vllm_worker: dict) -> str:
    config = {"Common": {"model": "org/tiny-7b", "kv-transfer-config": '{"kv_connector":"DynamoNixlConnector"}'},
              "Frontend": {"port": 8000},
              "Processor": {"router": "round-robin"},
              "VllmWorker": {**vllm_worker, "ServiceArgs": {"workers": 1, "resources": {"gpu": "1"}}, "common-configs": ["model", "kv-transfer-config"]},
              "PrefillWorker": {"ServiceArgs": {"workers": 2, "resources": {"gpu": "1"}}, "common-configs": ["model", "kv-transfer-config"]}}
    doc = {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment", "metadata": {"name": "graph"},
           "spec": {"envs": [{"name": "DYN_DEPLOYMENT_CONFIG", "value": json.dumps(config)}], "services": {}}}
    return yaml.safe_dump(doc, sort_keys=False, width=100000)


def _lint(text: str):
    return lint_text("graph.yaml", text, RULES, LintOptions())


def test_remote_prefill_false_in_the_config_string_is_reported_where_it_is_written():
    text = _dgd({"remote-prefill": False, "conditional-disagg": True})
    r = _lint(text)
    [f] = [f for f in r.findings if f.code == "DG101"]
    assert f.severity.label == "error" and not f.internal
    line = text.splitlines()[f.line - 1]
    assert line[f.column - 1:].startswith('"remote-prefill": false')
    assert f.fix is not None and not f.fix.edits  # nothing edits the manifest where the config is a string


def test_remote_prefill_true_in_the_config_string_is_no_finding():
    r = _lint(_dgd({"remote-prefill": True, "conditional-disagg": True}))
    assert "DG101" not in {f.code for f in r.findings}


def test_routing_rules_on_a_config_string_say_their_fix_without_editing_or_crashing():
    r = _lint(_dgd({"remote-prefill": True, "conditional-disagg": True, "max-prefill-queue-size": 0}))
    assert not any(f.internal for f in r.findings), [f.message for f in r.findings]
    assert all(not f.fix.edits for f in r.findings if f.fix is not None)
