"""Today's deployment formats: scripts, Kubernetes, DynamoGraphDeployment, compose, llm-d; positions included."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml

from disagg.doctor.context import LintOptions
from disagg.doctor.engine import lint_text
from disagg.doctor.registry import default_registry
from disagg.doctor.workload import parse_workload

STACKS = Path(__file__).resolve().parent / "fixtures" / "stacks"
RULES = [r for r in default_registry() if not r.live]


def lint(path: str, text: str, workload: str | None = None):
    result = lint_text(path, text, RULES, LintOptions(workload=parse_workload(workload) if workload else None))
    assert result.error is None, result.error
    return result


@pytest.mark.parametrize(
    "name, must, must_not",
    [
        ("dynamo-vllm-disagg-dgd.yaml", {"DG603", "DG602"}, {"DG201", "DG205", "DG208", "DG601"}),
        ("vllm-nixl-disagg.sh", {"DG209"}, {"DG201", "DG207", "DG203"}),
        ("llm-d-pd-epp-config.yaml", {"DG621"}, set()),
        ("vllm-pd-deployments.yaml", {"DG204", "DG208", "DG210"}, {"DG201", "DG207"}),
        ("sglang-pd.sh", {"DG611"}, {"DG201"}),
        ("compose-vllm-pd.yaml", {"DG201"}, {"DG207"}),
    ],
)
def test_real_world_shaped_fixtures(name, must, must_not):
    path = STACKS / name
    codes = {f.code for f in lint(str(path), path.read_text(), workload="isl=300").findings}
    assert must <= codes, codes
    assert not (must_not & codes), codes


def test_position_inside_shell_quoted_json_points_at_the_key():
    path = STACKS / "vllm-nixl-disagg.sh"
    text = path.read_text()
    [f] = [f for f in lint(str(path), text).findings if f.code == "DG209"]
    line = text.splitlines()[f.line - 1]
    assert line[f.column - 1 : f.end_column - 1] == "kv_load_failure_policy"


def test_position_inside_a_yaml_arg_points_at_the_value():
    path = STACKS / "vllm-pd-deployments.yaml"
    text = path.read_text()
    [f] = [f for f in lint(str(path), text).findings if f.code == "DG204"]
    assert text.splitlines()[f.line - 1][f.column - 1 :].startswith("2")
    [u] = [f for f in lint(str(path), text).findings if f.code == "DG210" and "UCX_TLS" in f.message]
    assert text.splitlines()[u.line - 1][u.column - 1 :].startswith("tcp,cuda_copy")


# --- the same prefill/decode pair in every format that can express it ---------------------------------------------

BASE = {"model": "Qwen/Qwen3-8B", "block": "16", "tp": "1", "dtype": "bfloat16", "connector": True, "port": None}
VARIANTS = {  # changes to the decode side, or to the prefill side for keys starting with "prefill:"
    "correct": ({}, None),
    "model": ({"model": "Qwen/Qwen3-14B"}, "DG205"),
    "block size": ({"prefill:block": "32"}, "DG203"),  # a larger prefill block cannot be split (a smaller one can)
    "tp ratio": ({"prefill:tp": "2"}, "DG204"),
    "dtype": ({"dtype": "float16"}, "DG206"),
    "connector presence": ({"connector": False}, "DG201"),
    "side-channel port": ({"port": "5600"}, "DG207"),  # both instances on one host with the same port
}
KV = json.dumps({"kv_connector": "NixlConnector", "kv_role": "kv_both"})


def _args(spec: dict, engine: str) -> list[str]:
    a = ["--block-size", spec["block"], "--tensor-parallel-size", spec["tp"], "--dtype", spec["dtype"]]
    if engine == "vllm":
        a = [spec["model"], *a] if False else a
        if spec["connector"]:
            a += ["--kv-transfer-config", KV]
    else:
        a = ["--model", spec["model"], *a]
        if not spec["connector"]:
            a += ["--connector", "none"]
    return a


def script(prefill: dict, decode: dict) -> str:
    out = ["#!/bin/bash"]
    for role, spec, port in (("prefill", prefill, 8100), ("decode", decode, 8200)):
        env = f"VLLM_NIXL_SIDE_CHANNEL_PORT={spec['port'] or (5600 if role == 'prefill' else 5601)} "
        out += [f"# {role} instance", env + "vllm serve " + shlex.quote(spec["model"]) + f" --port {port} " + " ".join(shlex.quote(a) for a in _args(spec, "vllm")) + " &"]
    return "\n".join(out) + "\n"


def kubernetes(prefill: dict, decode: dict) -> str:
    docs = []
    for role, spec in (("prefill", prefill), ("decode", decode)):
        docs.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"qwen-{role}"}, "spec": {"replicas": 1, "template": {"spec": {"containers": [
            {"name": "vllm", "image": "vllm/vllm-openai", "command": ["vllm", "serve", spec["model"]], "args": _args(spec, "vllm"),
             "env": [{"name": "VLLM_NIXL_SIDE_CHANNEL_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}]}}}})
    return yaml.safe_dump_all(docs, sort_keys=False)


def compose(prefill: dict, decode: dict) -> str:
    services = {}
    for role, spec, port in (("prefill", prefill, 8100), ("decode", decode, 8200)):
        services[role] = {"image": "vllm/vllm-openai", "network_mode": "host", "entrypoint": ["vllm", "serve"],
                          "command": [spec["model"], "--port", str(port), *_args(spec, "vllm")],
                          "environment": {"VLLM_NIXL_SIDE_CHANNEL_PORT": spec["port"] or (5600 if role == "prefill" else 5601)}}
    return yaml.safe_dump({"services": services}, sort_keys=False)


def dynamo_graph(prefill: dict, decode: dict) -> str:
    services = {"Frontend": {"componentType": "frontend", "extraPodSpec": {"mainContainer": {"command": ["python3", "-m", "dynamo.frontend", "--enforce-disagg"]}}}}
    for role, spec in (("prefill", prefill), ("decode", decode)):
        services[f"Vllm{role.title()}Worker"] = {"componentType": "worker", "subComponentType": role, "replicas": 1, "extraPodSpec": {"mainContainer": {
            "command": ["python3", "-m", "dynamo.vllm"], "args": [*_args(spec, "dynamo"), "--disaggregation-mode", role]}}}
    return yaml.safe_dump({"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment", "metadata": {"name": "g"}, "spec": {"services": services}}, sort_keys=False)


FORMATS = {"script": (script, "run.sh"), "kubernetes": (kubernetes, "k8s.yaml"), "compose": (compose, "compose.yaml"), "dynamo-graph": (dynamo_graph, "dgd.yaml")}
SAME_HOST = {"script", "compose"}  # formats where two instances share a host and its ports


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_mismatched_pair_is_caught_in_every_format(fmt, variant):
    change, code = VARIANTS[variant]
    if variant == "side-channel port" and fmt not in SAME_HOST:
        pytest.skip("pods have their own network: ports cannot collide")
    if variant == "side-channel port":
        prefill, decode = {**BASE, **change}, {**BASE, **change}
    else:
        prefill = {**BASE, **{k[8:]: v for k, v in change.items() if k.startswith("prefill:")}}
        decode = {**BASE, **{k: v for k, v in change.items() if not k.startswith("prefill:")}}
    make, name = FORMATS[fmt]
    result = lint(name, make(prefill, decode))
    assert result.deployment is not None and {w.role for w in result.deployment.workers} >= {"prefill", "decode"}
    errors = {f.code for f in result.findings if f.severity.label == "error"}
    if code is None:
        assert not errors, [f.message for f in result.findings]
    else:
        assert code in errors, [f.message for f in result.findings]


def test_folder_of_mixed_inputs_in_every_output_format(cli):
    for fmt in ("text", "json", "sarif", "github", "junit"):
        r = cli("doctor", STACKS, str(Path(__file__).resolve().parents[1] / "examples"), "--output-format", fmt, "--exit-zero")
        assert r.code == 0, r.err
        for name in ("vllm-nixl-disagg.sh", "vllm-pd-deployments.yaml", "seed-broken.yaml"):
            assert name in r.out, (fmt, name)


def test_format_flag_overrides_detection(cli, write):
    path = write(script(dict(BASE), dict(BASE)).split("\n", 1)[1], "run.txt")  # no shebang, no .sh: not detected
    assert cli("doctor", path).code == 2
    r = cli("doctor", path, "--format", "script", "--output-format", "json")
    assert r.code == 0 and r.json()["errors"] == []


def test_values_a_script_computes_at_run_time_are_not_compared():
    """Found by fuzzing: `--block-size $BS` or a mangled `[16` once crashed the block-size rule."""
    text = "#!/bin/bash\n# prefill\nvllm serve $MODEL --block-size $BS --tensor-parallel-size '[16' &\n# decode\nvllm serve other --block-size 16 &\n"
    codes = {f.code for f in lint("run.sh", text).findings}
    assert not codes & {"DG203", "DG204", "DG205"}
