"""Formats recognised by what they declare, and the forms of issue 19 cause 1 (fixtures in tests/fixtures/readers/,
written for these tests in the shapes the systems define)."""

from __future__ import annotations

from pathlib import Path

from disagg.doctor.context import LintOptions
from disagg.doctor.engine import lint_paths, lint_text
from disagg.doctor.registry import default_registry
from disagg.schemas.cmdline import Arg
from disagg.schemas.model import Unknown
from disagg.schemas.readers.common import engine_from_image
from disagg.schemas.source import Span

HERE = Path(__file__).resolve().parent / "fixtures" / "readers"
RULES = [r for r in default_registry() if not r.live]


def lint(name: str):
    path = HERE / name
    return lint_text(str(path), path.read_text(), RULES, LintOptions())


def engines(result) -> dict[str, object]:
    return {w.name: w for w in result.deployment.workers if w.is_engine}


def codes(result) -> set[str]:
    return {f.code for f in result.findings}


def test_an_unknown_key_never_makes_a_file_dynamo_v0():
    r = lint("not-a-v0-router.yaml")
    assert r.deployment is None and "DG401" not in codes(r)
    assert "not a recognised config" in r.error.message


def test_a_kind_no_reader_reads_is_listed_not_an_error():
    r = lint("unknown-kind.yaml")
    assert r.error is None and r.deployment is None
    assert r.skipped == "not a serving config I know: monitoring.coreos.com/v1/ServiceMonitor, v1/Service"


def test_compose_merge_keys_are_read_and_point_at_the_anchor():
    r = lint("compose-merge-keys.yaml")
    ws = engines(r)
    assert {w.role for w in ws.values()} == {"prefill", "decode"}
    [block] = [f for f in r.findings if f.code == "DG203"]  # 32 against 16: both commands were read
    env = ws["prefill"].env["VLLM_NIXL_SIDE_CHANNEL_HOST"]
    assert env.value == "10.0.0.5" and env.span.line == 6  # the anchor's line, not the service's


def test_aibrix_roles_from_the_role_name_its_gateway_reads_and_replicas_times_role_sets():
    r = lint("aibrix-stormservice.yaml")
    ws = engines(r)
    p, d = ws["qwen-pd/prefill/engine"], ws["qwen-pd/decode/engine"]
    assert (p.role, d.role) == ("prefill", "decode") and "role name" in p.role_why
    assert p.replicas.value == 0 and d.replicas.value == 6  # 3 per role set × 2 role sets
    assert str(p.known("tp")) == "2" and p.gpus.value == 2


def test_aibrix_pods_carry_the_labels_an_sglang_routers_selectors_find():
    """AIBrix's RoleSet controller labels each role pod role-name / storm-service-name and injects STORM_SERVICE_NAME;
    SGLang's PD router with --service-discovery sends prefill traffic to the pods its --prefill-selector matches. A
    prefill role in null mode is then sent prefill traffic it cannot serve as a prefill (DG107, an error)."""
    r = lint("aibrix-sglang-router-selectors.yaml")
    ws = engines(r)
    p, d = ws["qwen-pd/prefill/prefill"], ws["qwen-pd/decode/decode"]
    assert p.labels["role-name"] == "prefill" and p.labels["storm-service-name"] == "qwen-pd"
    assert p.settings["routed_as"].value == "prefill" and d.settings["routed_as"].value == "decode"
    [f] = [f for f in r.findings if f.code == "DG107"]
    assert f.severity.label == "error" and "--prefill-selector storm-service-name=qwen-pd role-name=prefill" in f.message
    # the same router whose selector value cannot be read (a variable the pod does not define) routes nothing
    text = (HERE / "aibrix-sglang-router-selectors.yaml").read_text().replace("$STORM_SERVICE_NAME role-name=prefill", "$OTHER role-name=prefill")
    r = lint_text("x.yaml", text, RULES, LintOptions())
    assert "routed_as" not in engines(r)["qwen-pd/prefill/prefill"].settings and "DG107" not in codes(r)
    # and with the prefill role in prefill mode, nothing is wrong
    ok = lint_text("x.yaml", (HERE / "aibrix-sglang-router-selectors.yaml").read_text().replace("--disaggregation-mode null", "--disaggregation-mode prefill"),
                   RULES, LintOptions())
    assert not [f for f in ok.findings if f.severity.label in ("error", "warning")]


def test_a_flux_helmrelease_is_read_as_its_charts_values_at_the_manifests_lines():
    """Flux's helm-controller installs the chart with spec.values (over any valuesFrom): they are the chart's values."""
    r = lint("flux-helmrelease.yaml")
    [f] = [f for f in r.findings if f.code == "DG202"]
    assert r.source_lines[f.line - 1].strip().startswith('args: ["--kv-transfer-config", \'{"kv_connector":"NixlConnector"')
    assert {w.role for w in r.deployment.workers} == {"prefill", "decode"}
    # values also taken from ConfigMaps or Secrets: a key left out may be set there, so the release is not read
    text = (HERE / "flux-helmrelease.yaml").read_text().replace("  values:\n", "  valuesFrom:\n    - kind: ConfigMap\n      name: overrides\n  values:\n")
    assert lint_text("x.yaml", text, RULES, LintOptions()).deployment is None


def test_ome_service_takes_its_runtime_from_another_file_of_the_run():
    rs = {Path(r.path).name: r for r in lint_paths([str(HERE / "ome")], RULES, LintOptions())}
    svc = rs["service.yaml"].deployment
    ws = {w.name: w for w in svc.workers}
    assert ws["small-chat/engine"].role == "prefill" and ws["small-chat/decoder"].role == "decode"
    assert ws["small-chat/engine"].replicas.value == 0 and ws["small-chat/engine"].replicas.span.line == 11
    assert ws["small-chat/router"].role == "router"
    [f] = [f for f in rs["service.yaml"].findings if f.code == "DG203"]  # page sizes 64/32 from the runtime
    assert f.line == 10  # at the service's component, since the value is written in the other file
    assert all(w.path.endswith("service.yaml") for w in svc.workers)


def test_ome_service_alone_is_no_error_and_says_what_was_not_checked():
    r = lint("ome/service.yaml")
    assert r.error is None and r.deployment.workers == []
    [f] = [f for f in r.findings if f.code == "DG405"]
    assert "runtime sglang-small-pd, a file not given" in f.message


def test_production_stack_values_become_the_chart_flags():
    r = lint("pstack-values.yaml")
    ws = engines(r)
    p, d = ws["modelSpec/prefiller"], ws["modelSpec/decoder"]
    assert (p.role, d.role) == ("prefill", "decode") and p.role_why == "kv_role kv_producer"
    assert p.known("kv_connector") == "LMCacheConnectorV1"
    assert d.replicas.value == 2 and str(d.known("tp")) == "2"
    [f] = [f for f in r.findings if f.code == "DG302"]  # tensorParallelSize 2 on requestGPU 1
    assert r.source_lines[f.line - 1].strip().startswith("tensorParallelSize")


def test_sglang_lws_chart_keys_become_its_flags_and_unread_keys_are_said():
    r = lint("sglang-lws-values.yaml")
    ws = engines(r)
    p, d = ws["prefill/leader"], ws["decode/leader"]
    assert (p.role_why, d.role_why) == ("--disaggregation-mode prefill", "--disaggregation-mode decode")
    assert (str(p.known("tp")), str(d.known("tp")), str(p.known("dp")), p.nodes) == ("16", "16", "16", 2)
    assert any("someKeyTheChartIgnores" in n for n in p.notes)
    assert "DG203" in codes(r)


def test_kserve_template_values_are_unknown_never_strings():
    r = lint("kserve-config-template.yaml")
    ws = engines(r)
    d = ws["my-pd-template/decode"]
    assert isinstance(d.value("tp"), Unknown) and "template" in d.value("tp").reason
    assert isinstance(d.flags["enforce-eager"].value, Unknown)  # only when {{ if }} holds
    assert d.known("served_model_name") is None
    assert (d.role, ws["my-pd-template/prefill"].role) == ("decode", "prefill")


def test_kserve_parallelism_is_the_dp_and_tp_the_template_passes():
    r = lint("kserve-parallelism.yaml")
    ws = engines(r)
    d = ws["big-moe/decode"]
    assert (str(d.known("tp")), str(d.known("dp")), d.nodes, d.gpus.value) == ("1", "16", 2, 8)
    assert "DG302" not in codes(r)  # 8 GPUs per pod hold 8 data-parallel ranks: none idle
    assert ws["big-moe/prefill"].replicas.value == 0


def test_llmd_router_values_read_the_config_the_epp_selects():
    r = lint("llmd-router-values.yaml")
    router = r.deployment.router
    assert router["profile:prefill"].value == ["prefill-filter", "max-score-picker"]
    assert "plugin:queue-scorer" not in router  # in the ConfigMap, but not the config the EPP reads
    assert router["pd-profile-handler.threshold"].value == 10
    assert r.source_lines[router["pd-profile-handler.threshold"].span.line - 1].strip() == "threshold: 10"


def _words(*texts: str) -> list[Arg]:
    return [Arg(t, Span(1, 1, 1, 1), ()) for t in texts]


def test_an_image_whose_entrypoint_is_vllm_serve_takes_a_model_first():
    assert engine_from_image("vllm/vllm-openai:v0.11.0", _words("Qwen/Qwen3-8B", "--port", "8000")) == "vllm"
    assert engine_from_image("$IMAGE", _words("Qwen/Qwen3-8B", "--kv-transfer-config", "{}")) == "vllm"
    assert engine_from_image("$IMAGE", _words("Qwen/Qwen3-8B", "--port", "8000")) is None  # nothing says which program
    assert engine_from_image("lmsysorg/sglang:v0.5.3", _words("Qwen/Qwen3-8B", "--port", "8000")) is None


def test_docker_run_of_an_image_variable_with_model_first():
    r = lint("docker-run-image-var.sh")
    assert sorted(w.role for w in r.deployment.workers if w.is_engine) == ["decode", "prefill"]


def test_ome_service_is_linked_to_its_runtime_when_files_are_read_in_separate_processes(tmp_path, monkeypatch):
    import os
    import shutil

    from disagg.doctor import engine

    for name in ("runtime.yaml", "service.yaml"):
        shutil.copy(HERE / "ome" / name, tmp_path / name)
    monkeypatch.setattr(engine, "PARALLEL_MIN_FILES", 2)  # two files, one per process
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    rs = {Path(r.path).name: r for r in lint_paths([str(tmp_path)], RULES, LintOptions())}
    assert [(f.code, f.line) for f in rs["service.yaml"].findings if f.code == "DG203"] == [("DG203", 10)]


def test_a_file_of_near_miss_sections_is_not_v0_but_the_error_says_what_it_resembles(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("VLLMWorker:\n  remote-prefill: true\nPrefilWorker: {}\n")
    r = lint_text(str(path), path.read_text(), RULES, LintOptions())
    assert r.deployment is None and (r.error.line, r.error.column) == (1, 1)
    assert "did you mean 'VllmWorker'" in r.error.message
    path.write_text("router:\n  policy: least_load\n")
    r = lint_text(str(path), path.read_text(), RULES, LintOptions())
    assert "did you mean" not in r.error.message


def test_aibrix_gateway_sends_the_prefill_pod_ip_so_an_all_address_side_channel_is_no_warning(tmp_path):
    text = (HERE / "aibrix-stormservice.yaml").read_text()
    assert "DG208" in codes(lint("aibrix-stormservice.yaml"))  # the default, localhost, binds where no pod reaches
    bound = text.replace("                  resources:\n", "                  env:\n                    - {name: VLLM_NIXL_SIDE_CHANNEL_HOST, value: 0.0.0.0}\n"
                         "                  resources:\n")
    path = tmp_path / "storm.yaml"
    path.write_text(bound)
    r = lint_text(str(path), bound, RULES, LintOptions())
    assert "DG208" not in codes(r) and len(engines(r)) == 2


def test_an_autoscaler_in_the_file_sets_the_floor_of_the_workload_it_scales():
    r = lint("hpa-floor.yaml")
    ws = engines(r)
    p, d = ws["qwen-prefill/vllm"], ws["qwen-decode/vllm"]
    assert (p.role, d.role) == ("prefill", "decode")
    assert p.replicas.value == 1 and "default" in p.replicas.origin  # HPA minReplicas defaults to 1
    assert d.replicas.value == 0 and r.source_lines[d.replicas.span.line - 1].strip() == "minReplicaCount: 0"


def test_a_broken_file_of_a_new_form_is_reported_in_a_folder_search_not_skipped(tmp_path):
    (tmp_path / "storm.yaml").write_text("apiVersion: orchestration.aibrix.ai/v1alpha1\nkind: StormService\nspec: [\n")
    (tmp_path / "other.yaml").write_text("a: [\n")
    rs = {Path(r.path).name: r for r in lint_paths([str(tmp_path)], RULES, LintOptions())}
    assert rs["storm.yaml"].error is not None and rs["storm.yaml"].error.message.startswith("invalid YAML")
    assert rs["other.yaml"].error is None and rs["other.yaml"].skipped
