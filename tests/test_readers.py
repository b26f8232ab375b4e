"""Readers on what real repositories contain: each kind of miss the first version made is caught (fixtures in
tests/fixtures/readers/, written for these tests in the shapes real repositories use)."""

from __future__ import annotations

from pathlib import Path

from disagg.doctor.context import LintOptions
from disagg.doctor.engine import lint_paths, lint_text
from disagg.doctor.registry import default_registry
from disagg.doctor.workload import parse_workload

HERE = Path(__file__).resolve().parent / "fixtures" / "readers"
STACKS = Path(__file__).resolve().parent / "fixtures" / "stacks"
RULES = [r for r in default_registry() if not r.live]


def lint(name: str, folder: Path = HERE, **opts):
    path = folder / name
    return lint_text(str(path), path.read_text(), RULES, LintOptions(**opts))


def roles(result) -> list[tuple[str, str]]:
    return sorted((w.role, w.role_why) for w in result.deployment.workers if w.is_engine)


def codes(result, severity: str | None = None) -> set[str]:
    return {f.code for f in result.findings if severity is None or f.severity.label == severity}


def test_a_role_named_far_above_the_command_and_a_command_run_from_a_variable():
    r = lint("distant-role-comment.sh")
    assert [role for role, _ in roles(r)] == ["decode", "prefill"], roles(r)
    [f] = [f for f in r.findings if f.code == "DG203"]  # prefill 32 > decode 16: the variables were followed
    line = r.source_lines[f.line - 1]
    assert line[f.column - 1 : f.column + 1] == "32", (f, line)


def test_a_connector_typo_is_not_hidden_by_an_assumed_default():
    r = lint("connector-typo-dynamo.sh")
    assert "DG202" in codes(r, "error") and "DG201" in codes(r, "error"), [f.message for f in r.findings]
    [typo] = [f for f in r.findings if f.code == "DG202"]
    assert "kv_conector" in typo.message


def test_a_variable_set_per_case_branch_gives_one_process_per_branch():
    r = lint("role-by-case.sh")
    assert [role for role, _ in roles(r)] == ["decode", "prefill"], roles(r)
    # the prefill branch's 64 against the decode branch's 16; but only the case labels say which is prefill (vLLM with
    # kv_both takes its role from a proxy that is not in the file), so it is an info that says so
    [f] = [f for f in r.findings if f.code == "DG203"]
    assert f.severity.label == "info" and "by its name alone" in f.message, f


def test_a_module_set_at_run_time_is_said_not_passed():
    r = lint("worker-module-var.sh")
    notes = [f for f in r.findings if f.code == "DG405"]
    assert notes and all("set at run time" in f.message for f in notes)


def test_older_dynamo_modules_are_read():
    r = lint("dynamo-sglang-worker-v03.sh")
    assert [role for role, _ in roles(r)] == ["decode", "prefill"]
    assert "DG611" in codes(r, "error")  # nixl against the mooncake default


def test_dynamo_trtllm_workers_are_paired_and_their_engine_files_named():
    r = lint("dynamo-trtllm.sh")
    assert [role for role, _ in roles(r)] == ["decode", "prefill"] and r.pairs
    assert any(f.code == "DG405" and "engine_configs/prefill.yaml" in f.message for f in r.findings)


def test_host_network_pods_share_ports_only_when_pinned_to_one_node():
    assert "DG207" not in codes(lint("hostnetwork-unpinned.yaml"))


def test_an_epp_config_inside_helm_values_is_read_with_positions():
    r = lint("gaie-values.yaml", workload=parse_workload("isl=300,osl=10"))
    found = {f.code: f for f in r.findings}
    assert "DG621" in found
    spots = {r.source_lines[f.line - 1].strip() for f in r.findings if f.code == "DG621"}
    assert "nonCachedTokens: 4096" in spots and "- name: prefill" in spots


def test_a_folder_of_prefill_and_decode_files_is_paired_across_files(tmp_path):
    for role in ("prefill", "decode"):
        (tmp_path / f"{role}.yaml").write_text(
            "apiVersion: apps/v1\nkind: Deployment\n"
            f"metadata: {{name: vllm-{role[0]}, labels: {{app: pool}}}}\n"
            f"spec:\n  template:\n    metadata: {{labels: {{app: pool, llm-d.ai/role: {role}}}}}\n    spec:\n      containers:\n"
            "        - name: vllm\n          args: [\"--model=${MODEL_NAME}\", \"--block-size=" + ("64" if role == "prefill" else "16") + "\"]\n")
    results = lint_paths([str(tmp_path)], RULES, LintOptions())
    assert all(r.pairs for r in results)
    by_file = {Path(r.path).name: {f.code for f in r.findings} for r in results}
    assert "DG203" in by_file["prefill.yaml"] and "DG203" in by_file["decode.yaml"]  # reported at both ends
    [f] = [f for r in results if r.path.endswith("decode.yaml") for f in r.findings if f.code == "DG203"]
    assert f.related and f.related[0].path.endswith("prefill.yaml")


def test_the_earlier_fixtures_still_read():
    assert "DG209" in codes(lint("vllm-nixl-disagg.sh", STACKS))
    r = lint("sglang-pd.sh", STACKS)
    assert "DG611" in codes(r) and r.pairs


def test_role_based_group_v1alpha1_roles_replicas_and_leader_worker_size():
    """sgl-project/rbg RoleBasedGroup: each role's pod template is read; the engine's flags give the role (the role
    names `first`/`second` say nothing), `replicas` (0 included) and `leaderWorkerSet.size` are kept with their spans."""
    r = lint("rbg/rbg-v1alpha1-inline.yaml")
    engines = {w.name: w for w in r.deployment.workers if w.is_engine}
    assert set(engines) == {"qwen-pd/first/engine", "qwen-pd/second/engine"}
    first, second = engines["qwen-pd/first/engine"], engines["qwen-pd/second/engine"]
    assert (first.role, first.role_why) == ("prefill", "--disaggregation-mode prefill") and second.role == "decode"
    assert (first.replicas.value, first.replicas.span.line) == (2, 19) and (second.replicas.value, second.replicas.span.line) == (0, 41)
    assert (first.nodes, second.nodes) == (1, 2) and first.gpus.value == 1
    assert any(w.role == "router" for w in r.deployment.workers)
    assert r.pairs, "prefill and decode of one RoleBasedGroup are one deployment"


def test_role_based_group_v1alpha2_template_ref_with_a_patch():
    """v1alpha2: both roles reference one role template; each patch replaces the container's args (strategic merge
    by container name) and adds env, while the template's command, image, env and resources stay."""
    r = lint("rbg/rbg-v1alpha2-templateref.yaml")
    ws = {w.name: w for w in r.deployment.workers}
    p, d = ws["llama-pd/p/vllm"], ws["llama-pd/d/vllm"]
    assert p.value("model") == "meta-llama/Llama-3.1-8B-Instruct" and p.where("model").line == 34  # from the patch
    assert d.value("model") == "meta-llama/Llama-3.1-70B-Instruct" and d.where("model").line == 50
    assert p.value("ucx_tls") == d.value("ucx_tls") == "rc,cuda_copy"  # the template's env
    assert d.value("side_channel_port") == "5600" and "VLLM_NIXL_SIDE_CHANNEL_PORT" not in p.env  # the patch's own env
    assert (p.replicas.value, d.replicas.value, d.nodes, p.gpus.value) == (3, 1, 2, 2)
    [f] = [f for f in r.findings if f.code == "DG205"]
    assert f.line == 34  # the model each patch sets differs: one is compared with the other


def test_a_dgd_of_dynamo_serve_services_is_read_and_each_service_is_listed_unchecked():
    r = lint("dgd-dynamo-serve.yaml")
    assert not r.skipped and not r.error
    ws = sorted((w.name, w.program, w.role) for w in r.deployment.workers)
    assert ws == [("Gateway", "dynamo-serve", "unknown"), ("PrefillSide", "dynamo-serve", "unknown")]
    assert r.deployment.engines() == []  # a name is no role: the graph's code decides, and it is not in the file
    notes = [f.message for f in r.findings if f.code == "DG405"]
    assert any("PrefillSide" in m and "./configs/split.yaml" in m for m in notes), notes
    assert codes(r) == {"DG405"} and codes(r, "warning") == codes(r, "error") == set()


def test_a_helm_template_is_read_for_what_is_literal_and_a_modelservice_preset_gives_its_roles():
    r = lint("helm/modelservice-preset.yaml")
    assert not r.error and not r.skipped
    ws = sorted((w.role, w.known("block_size"), w.known("kv_connector"), w.settings["model"].known) for w in r.deployment.engines())
    assert ws == [("decode", "16", "NixlConnector", False), ("prefill", "64", "NixlConnector", False)]  # {{ }} model: Unknown
    [f] = [f for f in r.findings if f.code == "DG203"]  # prefill block 64 > decode 16
    assert r.source_lines[f.line - 1].strip() == '- "64"'


def test_vllm_recipes_give_each_role_what_the_site_builds_it_from_and_nothing_more():
    r = lint("recipes/strategy-pd.yaml")
    ws = sorted((w.role, w.known("port"), w.known("block_size"), w.known("kv_role")) for w in r.deployment.engines())
    assert ws == [("decode", "9002", "16", "kv_consumer"), ("prefill", "9001", "32", "kv_producer")]
    assert "DG203" in codes(r)  # prefill block 32 > decode 16
    for name in ("recipes/store.yaml", "recipes/model.yaml"):
        r = lint(name)
        assert sorted(w.role for w in r.deployment.engines()) == ["decode", "prefill"], name
        # the strategy file adds the side channel and the ports: their absence here is no finding
        assert codes(r, "warning") == codes(r, "error") == set(), (name, [f.message for f in r.findings])
        assert all(not w.settings["side_channel_host"].known for w in r.deployment.engines())


def test_trtllm_serve_server_role_is_the_role():
    r = lint("trtllm-server-role.sh")
    ws = sorted((w.known("port"), w.role, w.role_from) for w in r.deployment.workers if w.program == "trtllm-serve")
    assert ws == [("8101", "prefill", "flag"), ("8102", "decode", "flag"), ("8103", "aggregated", "default")]  # no role given
    assert len(r.pairs) == 1


def test_a_written_trtllm_router_config_names_its_context_and_generation_servers():
    r = lint("trtllm-written-router-config.sh")
    ws = sorted((w.known("port"), w.role, w.role_from) for w in r.deployment.workers if w.program == "trtllm-serve")
    assert ws == [("9101", "prefill", "router"), ("9102", "decode", "router")]
    assert len(r.pairs) == 1


def test_engine_configs_written_with_echo_or_printf_are_read():
    r = lint("trtllm-echo-written-configs.sh")
    ws = sorted((w.role, w.known("block_size"), w.known("transfer_backend")) for w in r.deployment.engines())
    assert ws == [("decode", 16, "UCX"), ("prefill", 64, "UCX")]
    [f] = [f for f in r.findings if f.code == "DG203"]  # tokens_per_block 64 against 16, pointed at the echo line
    assert (f.line, r.source_lines[f.line - 1][f.column - 1 : f.column + 1]) == (3, "64")


def test_a_helm_template_value_inside_an_if_is_unknown_and_one_around_the_object_is_not():
    r = lint("helm/deployment-branches.yaml")
    [w] = r.deployment.workers
    assert w.known("block_size") == "16"  # the {{ if }} around the whole Deployment leaves it as written
    assert not w.settings["kv_role"].known and w.role == "unknown"  # both branches are written: neither is the value
    assert not w.replicas.known


def test_a_helm_template_block_scalar_opening_with_an_action_line_is_read():
    r = lint("helm/block-scalar-action.yaml")
    assert not r.error and not r.skipped, r.error
    [w] = r.deployment.engines()
    assert (w.role, w.known("block_size"), w.known("kv_connector")) == ("prefill", "16", "NixlConnector")
    [line] = [i for i, text in enumerate(r.source_lines, 1) if '"--kv-transfer-config"' in text]
    assert w.settings["kv_connector"].span.line == line  # lines stay where they were written


def test_modelservice_values_run_the_routing_sidecar_with_their_connector(cli, write):
    """The chart puts the routing sidecar in decode pods with `--connector={{ .proxy.connector }}` (llm-d-modelservice
    _helpers.tpl routingProxy): a connector the sidecar refuses is DG622 at the values' line; none with the proxy off."""
    text = (HERE / "modelservice-values-sidecar.yaml").read_text()
    assert not [f for f in cli("doctor", str(write(text, "values.yaml")), "--output-format", "json").json()["findings"] if f["severity"] != "info"]
    typo = text.replace("connector: nixlv2", "connector: nixl-v2")
    found = [(f["code"], f["line"]) for f in cli("doctor", str(write(typo, "v2.yaml")), "--output-format", "json").json()["findings"]
             if f["severity"] in ("warning", "error")]
    assert found == [("DG622", 8)]
    off = typo.replace("  proxy:\n", "  proxy:\n    enabled: false\n")
    assert not [f for f in cli("doctor", str(write(off, "v3.yaml")), "--output-format", "json").json()["findings"] if f["code"] == "DG622"]


def test_modelservice_values_custom_model_command_runs_the_containers_own_script():
    """`modelCommand: custom`: the chart runs the container's command and args as written (llm-d-modelservice
    customModelCommand), here a `bash -c` script whose `exec vllm serve` carries the connector."""
    text = (HERE / "modelservice-values-sidecar.yaml").read_text().replace(
        "  - name: vllm\n    modelCommand: vllmServe\n    args:\n    - --kv-transfer-config\n    - '{\"kv_connector\":\"NixlConnector\",\"kv_role\":\"kv_both\"}'\nprefill:",
        "  - name: vllm\n    modelCommand: custom\n    command: [/bin/bash, -c]\n    args:\n    - |\n      exec vllm serve org/model --port 8200 \\\n"
        "        --kv-transfer-config '{\"kv_connector\":\"NIXLConnector\",\"kv_role\":\"kv_both\"}'\nprefill:")
    r = lint_text("values.yaml", text, RULES, LintOptions())
    decode = [w for w in r.deployment.workers if w.role == "decode" and w.is_engine]
    assert [w.known("kv_connector") for w in decode] == ["NIXLConnector"]
    assert "DG212" in {f.code for f in r.findings}
