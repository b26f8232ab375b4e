"""AWS ECS task definitions (schemas/readers/ecs.py) and JSON in a folder search (doctor/files.py `takes`): a
container's entryPoint + command is read as a Kubernetes container's command + args is, its network from the task's
networkMode. Fixtures in tests/fixtures/readers/ecs/, written for these tests."""

from __future__ import annotations

import json
from pathlib import Path

from test_readers import HERE, codes, lint

from disagg.doctor.context import LintOptions
from disagg.doctor.files import collect_paths, read_path
from disagg.schemas.model import Unknown

ECS = HERE / "ecs"


def _engines(r):
    return {w.role: w for w in r.deployment.workers if w.is_engine}


def test_a_task_definition_runs_entrypoint_and_command_as_one_argv():
    r = lint("ecs/pd-one-task.json")
    assert not r.error and not r.skipped and r.deployment.format == "ecs-task-definition"
    ws = _engines(r)
    p, d = ws["prefill"], ws["decode"]
    # command only: the vLLM image's entrypoint (`vllm serve`) gets it as arguments; entryPoint sh -c: the script
    assert (p.program, d.program) == ("vllm", "vllm")
    assert (p.role_from, d.role_from) == ("connector", "connector")
    assert p.value("model") == d.value("model") == "acme/tiny-chat-8b"
    assert (p.gpus.value, d.gpus.value) == (1, 2)  # resourceRequirements type GPU
    assert isinstance(p.replicas.value, Unknown)  # how many tasks run is the service's desiredCount
    assert len(r.pairs) == 1


def test_awsvpc_containers_share_the_task_network_and_bridge_ones_do_not():
    shared = lint("ecs/pd-one-task.json")
    assert "DG304" in codes(shared, "error")  # both bind 8000 on the task's one interface
    assert "DG208" not in codes(shared)  # the side channel's localhost is the peer's too
    apart = lint("ecs/pd-bridge.json")
    assert "DG304" not in codes(apart)
    assert "DG208" in codes(apart, "warning")  # bridge: each container its own namespace, localhost is itself


def test_environment_files_make_the_settings_they_may_set_unknown():
    r = lint("ecs/pd-bridge-envfiles.json")
    p = _engines(r)["prefill"]
    assert isinstance(p.value("side_channel_host"), Unknown)
    assert "DG208" not in codes(r)  # VLLM_NIXL_SIDE_CHANNEL_HOST may be in the S3 file: not known to be localhost


def test_a_dynamo_sdk_graph_under_uv_run_is_read_but_its_role_is_not_guessed():
    r = lint("ecs/sdk-graph-described.json")  # `describe-task-definition` output: under taskDefinition
    assert not r.error and not r.skipped
    (w,) = r.deployment.workers
    assert w.program == "dynamo-serve" and w.role == "unknown" and w.role_from == "none"
    assert w.host.network.startswith("unpinned-host:")  # networkMode host: the instance ECS picks
    assert any("pieces.second_stage:SecondStage" in n and "settings/two_stage.yaml" in n for n in w.notes)
    assert codes(r, "warning") == codes(r, "error") == set()


def _put(root: Path, rel: str, data) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))
    return p


def test_a_folder_search_takes_json_only_when_it_declares_a_form_the_doctor_reads(tmp_path):
    _put(tmp_path, "deploy/task.json", (ECS / "pd-one-task.json").read_text())
    _put(tmp_path, "k8s/prefill.json", {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "p"}, "spec": {}})
    _put(tmp_path, "web/package.json", {"name": "site", "version": "1.0.0", "scripts": {"serve": "vllm serve x"}})
    _put(tmp_path, "web/tsconfig.json", "{\n  // comments are no JSON\n  \"compilerOptions\": {}\n}\n")
    _put(tmp_path, "schemas/k8s.json", {"properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}}})
    _put(tmp_path, "data/broken.json", '{"apiVersion": "v1", "kind": ')
    found = {str(Path(p).relative_to(tmp_path)) for p, explicit in collect_paths([str(tmp_path)]) if not explicit}
    assert found == {"deploy/task.json", "k8s/prefill.json"}


def test_a_json_file_named_explicitly_is_read_and_said_to_be_no_config_when_it_is_not(tmp_path):
    p = _put(tmp_path, "package.json", {"name": "site", "version": "1.0.0"})
    r = read_path(str(p), True, LintOptions(), "auto")
    assert r.error is not None and "not a recognised config" in r.error.message
