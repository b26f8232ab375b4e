"""The doctor never raises on a config: a short, seeded form of bench/fuzz_doctor.py (which runs 100,000 cases),
and each crash site the long form found, as the smallest input that reached it."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from conftest import ROOT
from disagg.doctor.check import lint_results
from disagg.doctor.context import LintOptions
from disagg.doctor.files import read_file
from disagg.doctor.registry import default_registry


def _fuzzer():
    spec = importlib.util.spec_from_file_location("fuzz_doctor", ROOT / "bench" / "fuzz_doctor.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_doctor"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("seed", [11, 12])
def test_short_fuzz_finds_no_crash(seed):
    out = _fuzzer().fuzz(cases=300, seed=seed, seconds=25)
    assert out["cases"] >= 100 and out["seeds"] >= 100
    assert out["sites"] == {}, out["sites"]


def test_the_fuzzer_counts_a_contained_crash(monkeypatch):
    """The fuzz would see a rule that raises (it is contained, so only the fuzzer's recorder can tell)."""
    from disagg.doctor.finding import Severity
    from disagg.doctor.registry import Rule

    class Raises(Rule):
        code, name, severity = "DG998", "test-raises", Severity.INFO

        def check(self, ctx):
            raise ValueError("boom")

    monkeypatch.setitem(default_registry()._rules, "DG998", Raises)
    out = _fuzzer().fuzz(cases=3, seed=1)
    assert any(key.startswith("ValueError at tests/test_fuzz.py") for key in out["sites"]), out["sites"]


RULES = [r for r in default_registry() if not r.live]

# Inputs that raised somewhere in the doctor before (found by bench/fuzz_doctor.py), in the smallest form found.
REGRESSIONS = {
    "llm-d values: containers args a number, image a number": (
        "values.yaml",
        "modelArtifacts: {name: m}\nprefill:\n  containers:\n  - {name: vllm, args: 3, image: 7}\ndecode:\n  containers: 5\n",
    ),
    "llm-d values: image a mapping": ("values.yaml", "modelArtifacts: {name: m}\nprefill:\n  containers:\n  - {name: vllm, image: {a: 1}}\n"),
    "pod: capabilities a list": (
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    command: [vllm, serve, m]\n"
        "    securityContext: {capabilities: [IPC_LOCK]}\n",
    ),
    "EPP config: a profile's plugins a number": (
        "epp.yaml",
        "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: prefill-filter\n"
        "schedulingProfiles:\n- name: prefill\n  plugins: -1\n",
    ),
    "compose: deploy.resources a list": (
        "compose.yaml",
        "services:\n  p:\n    image: vllm/vllm-openai\n    command: [vllm, serve, m]\n    deploy: {resources: [1]}\n",
    ),
    "kv-transfer-config: connectors a number": (
        "run.sh",
        "vllm serve m --kv-transfer-config '{\"kv_connector\":\"MultiConnector\",\"kv_connector_extra_config\":{\"connectors\":3}}'\n",
    ),
    "shell: a function whose name is a command substitution": ("run.sh", "function $(f) {\n  vllm serve m\n}\nvllm serve m --port 8100 &\n"),
    "RoleBasedGroup: roleTemplates a number": (
        "rbg.yaml",
        "apiVersion: workloads.x-k8s.io/v1alpha2\nkind: RoleBasedGroup\nmetadata: {name: g}\nspec:\n  roleTemplates: 1\n  roles:\n"
        "  - name: p\n    standalonePattern:\n      templateRef: {name: base}\n",
    ),
    "RoleBasedGroup: roles a number": (
        "rbg.yaml", "apiVersion: workloads.x-k8s.io/v1alpha2\nkind: RoleBasedGroup\nmetadata: {name: g}\nspec:\n  roles: 2\n",
    ),
    "pod: containers a number": ("pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: 1.5\n"),
    "kthena ModelBooster: backend env a number": (
        "booster.yaml",
        "apiVersion: workload.serving.volcano.sh/v1alpha1\nkind: ModelBooster\nmetadata: {name: b}\nspec:\n  backend:\n"
        "    name: b\n    type: vLLMDisaggregated\n    modelURI: hf://org/m\n    env: 3\n    workers:\n"
        "    - {type: prefill, replicas: 1, resources: {limits: {nvidia.com/gpu: 1}},\n"
        "       config: {kv-transfer-config: '{\"kv_connector\":\"NixlConnector\",\"kv_role\":\"kv_both\"}'}}\n",
    ),
    "vLLM pair: a prefill block size of 0": (
        "run.sh",
        "vllm serve m --block-size 16 --kv-transfer-config '{\"kv_connector\":\"NixlConnector\",\"kv_role\":\"kv_consumer\"}' &\n"
        "vllm serve m --port 8200 --block-size 0 --kv-transfer-config '{\"kv_connector\":\"NixlConnector\",\"kv_role\":\"kv_producer\"}' &\n",
    ),
}


def test_a_yaml_key_without_a_constructor_is_a_located_error():
    """`=` as a key is YAML's `value` tag, which no constructor knows: a config error at the key, not a traceback."""
    r = read_file("c.yaml", "a:\n  =: 1\n", LintOptions())
    assert not r.crashed and (r.error.line, r.error.column) == (2, 3) and "invalid value" in r.error.message


@pytest.mark.parametrize("name", list(REGRESSIONS))
def test_fuzz_regression_reads_without_internal_error(name):
    path, text = REGRESSIONS[name]
    results = lint_results([read_file(path, text, LintOptions(gpus=4))], RULES, LintOptions(gpus=4))
    assert not results[0].internal_error, (results[0].error, results[0].crashes, [f.message for f in results[0].findings if f.internal])


# Two files the fuzz mutated from our fixtures (seed 14): a compose decode and a script whose prefill pairs with it only
# as a guess across files; DG203 passes severity=None ("the rule's own") and the guess cap compared None with INFO.
GUESSED_PAIR = {
    "compose-merge-keys.yaml": "x-engine:\n  image: vllm/vllm-openai:v0.11.0\n  network_mode: host\n  environment:\n    VLLM_NIXL_SIDE_CHANNEL_HOST: 10.0.0.5\nservices:\n  decode:\n    image: vllm/vllm-openai:v0.11.0\n    network_mode: host\n    environment:\n      VLLM_NIXL_SIDE_CHANNEL_HOST: 10.0.0.5\n    command:\n    - Qwen/Qwen3-8B\n    - --port\n    - '8200'\n    - --block-size\n    - '16'\n    - --kv-transfer-config\n    - '{\"kv_connector\":\"NixlConnector\",\"kv_role\":\"kv_consumer\"}'\n",
    "rank-selects-role.sh": "#!/bin/bash\n#!/bin/bash\n# Written for thee tests: the same script runs on two hosts; the node rank picks what each host starts.\nNODE_RANK=${NODE_RANK:-0}\nMODEL=Qwen/Qwen3-8B\nif [ \"$NODE_RANK\" -eq 0 ]; then\n  vllm serve $MODEL --port 8100 --block-size 64 \\\n  vllm serve $MODEL --port 8100 --block-size 64 \\\n    --kv-transfer-config '{\"kv_conector\":\"NixlConnector\",\"kv_role\":\"kv_producer\"}'\nese\n  vllm serve $MODEL --port 8200 --block-size 16 \\\n    --kv-transfer-config '{\"kv_connector\":\"Nix"
}


def test_a_guessed_pair_with_the_rules_own_severity_reads_without_internal_error():
    opts = LintOptions()
    results = lint_results([read_file(name, text, opts) for name, text in GUESSED_PAIR.items()], RULES, opts)
    assert not any(r.internal_error for r in results), [f.message for r in results for f in r.findings if f.internal]
    assert any(f.code == "DG203" and "a guess" in f.message for r in results for f in r.findings)
