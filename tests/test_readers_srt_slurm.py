"""NVIDIA srt-slurm recipes (schemas/readers/srt_slurm.py): each role's worker as srtctl builds its command, from the
keys srtctl's schema reads (fixtures in tests/fixtures/readers/srt-slurm/, written for these tests)."""

from __future__ import annotations

from test_readers import HERE, RULES, codes, lint

from disagg.doctor.context import LintOptions
from disagg.doctor.engine import lint_text


def _roles(r):
    return {w.role: w for w in r.deployment.workers}


def test_sglang_sections_become_dynamo_sglang_flags_and_multi_node_workers_span_their_nodes():
    r = lint("srt-slurm/sglang-dynamo.yaml")
    assert not r.error and not r.skipped and r.deployment.format == "srt-slurm"
    ws = _roles(r)
    p, d = ws["prefill"], ws["decode"]
    assert p.program == d.program == "dynamo.sglang"  # frontend.type defaults to dynamo
    assert (p.role_from, d.role_from) == ("flag", "flag")  # srtctl passes --disaggregation-mode <role>
    # `_` and `-` spell one flag; a bool true is a bare flag, false none
    assert p.value("transfer_backend") == "nixl" and "trust-remote-code" in p.flags and "enable-dp-attention" not in p.flags
    # srtctl drops each section's served-model-name and gives every role the prefill's (get_served_model_name)
    assert p.value("served_model_name") == d.value("served_model_name") == "org/my-model"
    assert p.value("model") == d.value("model") == "my-model"
    assert (d.gpus.value, d.nodes, d.value("tp")) == (4, 2, "8")  # 2 nodes x 4 GPUs for TP 8: no DG302
    assert d.value("ucx_tls") == "rc,cuda_copy" and "ucx_tls" not in p.settings  # each role's own environment
    assert {"sglang", "dynamo"} <= set(p.target.candidates)  # the image tag and dynamo.version
    [f] = [f for f in r.findings if f.severity.label in ("error", "warning")]
    assert (f.code, f.line) == ("DG611", 24)  # at the prefill's transfer backend value
    assert "DG601" not in codes(r) and "DG302" not in codes(r)


def test_vllm_connector_default_zero_workers_and_kv_dtype():
    r = lint("srt-slurm/vllm-dynamo.yaml")
    ws = _roles(r)
    p, d = ws["prefill"], ws["decode"]
    assert p.program == "dynamo.vllm" and p.value("kv_connector") == d.value("kv_connector") == "NixlConnector"  # backend.connector default nixl
    assert "disaggregation-mode" not in p.flags  # its spelling depends on the srtctl release
    assert (p.replicas.value, d.replicas.value) == (0, 2) and p.gpus.value is None
    # the prefill has no served-model-name of its own: srtctl passes the decode section's
    assert p.value("served_model_name") == "decode-name"
    assert codes(r, "error") == {"DG104", "DG206"} and codes(r, "warning") == set()


def test_trtllm_section_is_the_engine_config_and_ucx_without_active_messages_is_found():
    r = lint("srt-slurm/trtllm-dynamo.yaml")
    ws = _roles(r)
    p, d = ws["prefill"], ws["decode"]
    assert d.env["UCX_TLS"].value == "cuda_copy,cuda_ipc"
    assert p.program == "dynamo.trtllm" and (p.value("tp"), p.gpus.value, p.nodes) == (16, 8, 2)
    assert p.value("transfer_backend") == "UCX" and not any("not in this file" in n for n in p.notes)
    assert "0.8.1" in p.target.releases("dynamo")  # dynamo.install false: the container's Dynamo
    [f] = [f for f in r.findings if f.severity.label in ("error", "warning")]
    assert (f.code, f.line) == ("DG703", 21) and f.message.startswith("decode worker") and "UCX cache transceiver" in f.message


def test_a_section_that_sets_its_own_mode_wins_over_the_role_srtctls_router_sends_it():
    r = lint("srt-slurm/sglang-router.yaml")
    p = next(w for w in r.deployment.workers if w.name == "prefill worker")
    assert p.program == "sglang" and p.role == "aggregated"  # frontend.type sglang: sglang.launch_server; `null` comes later
    assert p.settings["routed_as"].value == "prefill"  # srtctl's sglang_router lists it as a --prefill server
    [f] = [f for f in r.findings if f.code == "DG107"]
    assert f.severity.label == "error" and f.line == 20 and "sglang_router" in f.message


def test_sweep_parameters_are_not_read_as_values():
    r = lint("srt-slurm/sweep.yaml")
    p = next(w for w in r.deployment.workers if w.role == "prefill")
    assert not p.settings["tp"].known
    assert codes(r, "error") == codes(r, "warning") == set()


def test_a_recipe_missing_required_keys_is_not_read_and_an_override_file_is_read_as_its_variant():
    r = lint("srt-slurm/override-file.yaml")
    assert [w.name for w in r.deployment.workers] == ["prefill worker (variant override_small)", "decode worker (variant override_small)"]
    assert r.deployment.workers[-1].replicas.value == 2  # override_small's decode_workers
    broken = (HERE / "srt-slurm" / "override-file.yaml").read_text().replace('    gpu_type: "h100"\n', "")
    assert lint_text("x.yaml", broken, RULES, LintOptions()).deployment is None  # the merged recipe lacks gpu_type
    text = (HERE / "srt-slurm" / "sglang-dynamo.yaml").read_text().replace('  gpu_type: "gb200"\n', "")
    assert lint_text("x.yaml", text, RULES, LintOptions()).deployment is None  # resources.gpu_type is required
    text = (HERE / "srt-slurm" / "sglang-dynamo.yaml").read_text().replace("type: sglang", "type: mocker")
    assert lint_text("x.yaml", text, RULES, LintOptions()).deployment is None  # srtctl's mocker is no engine


def test_a_role_the_recipe_never_mentions_is_not_invented():
    text = 'name: "x"\nmodel: {path: m, container: c, precision: bf16}\nresources: {gpu_type: h100, decode_nodes: 1, decode_workers: 1}\n'
    r = lint_text("x.yaml", text, RULES, LintOptions())
    assert [w.role for w in r.deployment.workers] == ["decode"] and "DG104" not in codes(r)


def test_under_dynamo_a_prefill_section_that_turns_its_mode_off_leaves_no_prefill():
    text = (HERE / "srt-slurm" / "sglang-dynamo.yaml").read_text().replace("      trust-remote-code: true\n",
                                                                            '      trust-remote-code: true\n      disaggregation-mode: "null"\n')
    r = lint_text("x.yaml", text, RULES, LintOptions())
    [f] = [f for f in r.findings if f.code == "DG107"]
    assert f.severity.label == "warning" and f.line == 26 and "its launcher (srtctl starts it as a prefill worker" in f.message


def test_under_dynamo_a_decode_section_that_sets_prefill_mode_leaves_no_decode():
    """srtctl starts the decode section's workers with --disaggregation-mode decode and then the section's own keys,
    so the section's `prefill` comes last and wins: two prefill workers and none that decodes. The launcher's role is
    what srtctl does, not a name, so this is a warning even though the worker's own flag says prefill."""
    text = (HERE / "srt-slurm" / "sglang-dynamo.yaml").read_text().replace("      disaggregation-transfer-backend: mooncake\n",
                                                                            '      disaggregation-transfer-backend: mooncake\n      disaggregation-mode: "prefill"\n')
    r = lint_text("x.yaml", text, RULES, LintOptions())
    [f] = [f for f in r.findings if f.code == "DG107"]
    assert f.severity.label == "warning" and r.source_lines[f.line - 1].strip() == 'disaggregation-mode: "prefill"'
    assert "its launcher (srtctl starts it as a decode worker" in f.message and "no worker serves decode" in f.message


def test_recompute_on_failed_loads_is_reported_only_where_a_prefill_hands_kv_over():
    kv = '\'{"kv_connector": "NixlConnector", "kv_role": "kv_both", "kv_load_failure_policy": "recompute"}\''
    text = (HERE / "srt-slurm" / "vllm-dynamo.yaml").read_text().replace("prefill_workers: 0", "prefill_workers: 1") \
        .replace("      kv-cache-dtype: fp8\n", f"      kv-cache-dtype: fp8\n      kv-transfer-config: {kv}\n")
    r = lint_text("x.yaml", text, RULES, LintOptions())
    assert "DG209" not in codes(r)  # the prefill's own loads (a KV store, an offload tier) may recompute by design
    text = text.replace("      kv-cache-dtype: auto\n", f"      kv-cache-dtype: auto\n      kv-transfer-config: {kv}\n")
    r = lint_text("x.yaml", text, RULES, LintOptions())
    [f] = [f for f in r.findings if f.code == "DG209"]
    assert f.message.startswith("decode worker")
    agg = 'name: "a"\nmodel: {path: m, container: c, precision: bf16}\nresources: {gpu_type: h100, agg_nodes: 1, agg_workers: 1}\n' \
          f'backend:\n  type: vllm\n  vllm_config:\n    aggregated:\n      kv-transfer-config: {kv}\n'
    r = lint_text("a.yaml", agg, RULES, LintOptions())
    assert [w.role for w in r.deployment.workers] == ["aggregated"] and "DG209" not in codes(r)


def test_a_dynamo_wheel_version_names_the_release_and_served_names_that_differ_never_pair():
    r = lint("srt-slurm/vllm-wheel.yaml")
    p = _roles(r)["prefill"]
    assert "1.2.0" in p.target.releases("dynamo")  # `wheel` is an ai-dynamo version; it clears `version`
    [f] = [f for f in r.findings if f.severity.label in ("error", "warning")]
    assert f.code == "DG601" and r.source_lines[f.line - 1].strip() == 'served-model-name: "org/small-model"'


def test_an_override_recipe_is_read_as_each_variant_srtctl_runs():
    """srtctl deep-merges each override_* and each item of a zip_override_* onto `base` and runs those, not the base
    (src/srtctl/core/config.py generate_override_configs): each variant is a config of its own, at the lines where its
    values are written, and a finding several variants share is reported once with their names."""
    r = lint("srt-slurm/override-variants.yaml")
    deps = [r.deployment, *r.deployment.parts]
    assert len(deps) == 3  # override_tp4, zip_override_sweep[0], zip_override_sweep[1]; the base is not run
    decode = {d.workers[-1].name: d.workers[-1] for d in deps}
    assert set(decode) == {"decode worker (variant override_tp4)", "decode worker (variant zip_override_sweep[0])",
                           "decode worker (variant zip_override_sweep[1])"}
    tp = {name: (w.known("tp"), r.source_lines[w.settings["tp"].span.line - 1].strip()) for name, w in decode.items()}
    assert tp["decode worker (variant override_tp4)"] == ("4", "tensor-parallel-size: 4")
    assert tp["decode worker (variant zip_override_sweep[0])"][0] == "8" and tp["decode worker (variant zip_override_sweep[0])"][1].startswith("tensor-parallel-size: [8, 4]")
    [idle] = [f for f in r.findings if f.code == "DG302"]  # 4 of 8 GPUs idle where TP is 4: two variants, one finding
    assert "(variants override_tp4, zip_override_sweep[1])" in idle.message
    [mismatch] = [f for f in r.findings if f.code == "DG611"]  # the base's nixl/mooncake mismatch, in every variant
    assert "zip_override_sweep[0]" in mismatch.message and r.source_lines[mismatch.line - 1].strip() == "disaggregation_transfer_backend: nixl"


def test_an_override_that_fixes_what_the_base_breaks_clears_it_for_that_variant_only():
    text = (HERE / "srt-slurm" / "override-variants.yaml").read_text().replace(
        "        tensor-parallel-size: 4\n\nzip", "        tensor-parallel-size: 4\n        disaggregation-transfer-backend: nixl\n\nzip")
    r = lint_text("x.yaml", text, RULES, LintOptions())
    [mismatch] = [f for f in r.findings if f.code == "DG611"]
    assert "override_tp4" not in mismatch.message and "zip_override_sweep[1]" in mismatch.message
    only_base = "\n".join(line for line in text.split("\noverride_tp4:")[0].splitlines()) + "\n"
    r = lint_text("x.yaml", only_base, RULES, LintOptions())
    assert r.deployment is not None and not r.deployment.parts and [w.name for w in r.deployment.workers] == [
        "prefill worker (variant base)", "decode worker (variant base)"]
