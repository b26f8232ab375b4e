"""LightLLM's `python -m lightllm.server.api_server --run_mode ...` is read as a serving program: roles from
`--run_mode`, its servers paired by the pd_master they register with (fixtures in tests/fixtures/readers/lightllm/)."""

from __future__ import annotations

from test_readers import HERE, RULES, codes, lint, roles

from disagg.doctor.context import LintOptions
from disagg.doctor.engine import lint_paths


def test_lightllm_run_modes_give_the_roles_and_one_script_is_paired():
    r = lint("lightllm/one-host.sh")
    assert roles(r) == [("decode", "--run_mode decode"), ("prefill", "--run_mode prefill")]
    [master] = [w for w in r.deployment.workers if not w.is_engine]
    assert (master.role, master.engine) == ("router", None)  # the pd_master serves no model
    assert len(r.pairs) == 1
    assert {w.known("model") for w in r.deployment.workers} == {"/models/qwen2-7b"}  # --model_dir is the model
    # LightLLM's --port is its HTTP port: the decode server takes the prefill server's
    assert "DG304" in codes(r, "error")


def test_a_misspelt_run_mode_is_a_warning_with_its_source():
    r = lint("lightllm/run-mode-typo.sh")
    [f] = [f for f in r.findings if f.code == "DG214"]
    assert f.severity.label == "warning" and "did you mean 'prefill'" in f.message and "api_cli.py:7-16" in f.message
    assert r.source_lines[f.line - 1][f.column - 1 : f.column + 5] == "prefil"


def test_lightllm_servers_of_two_files_pair_by_the_pd_master_they_register_with():
    results = lint_paths([str(HERE / "lightllm" / "pd")], RULES, LintOptions())
    pairs = list({(id(p.decode), id(p.prefill)): p for r in results for p in r.pairs}.values())  # each file lists its pairs
    [pair] = pairs
    assert pair.prefill.path.endswith("prefill.sh") and pair.decode.path.endswith("/decode.sh") and not pair.guess
    assert pair.why == "both register with the pd_master 10.30.0.1:60011 across files"
    # the pd_master compares nothing of the two: the model mismatch is reported (an info: model folders, not names)
    found = [f for r in results for f in r.findings if f.code == "DG205"]
    assert found and all(f.severity.label == "info" for f in found)
    # decode-other-master.sh loads the prefill's model but registers elsewhere: never its partner
    assert not any(p.decode.path.endswith("decode-other-master.sh") for p in pairs)


def test_a_pd_master_address_set_at_run_time_is_compared_as_written(tmp_path):
    from disagg.schemas import lightllm

    script = tmp_path / "pd.sh"
    script.write_text("#!/bin/bash\n" + "".join(
        f"python -m lightllm.server.api_server --model_dir /m --run_mode {mode} --host 10.0.0.{i} --port 800{i} --pd_master_ip ${{MASTER_IP}} &\n"
        for i, mode in enumerate(("prefill", "decode"), 1)))
    [r] = lint_paths([str(script)], RULES, LintOptions())
    # the words the file writes, not the reason they are unknown: two files that write the same words may pair
    assert {lightllm.registers_with(w) for w in r.deployment.workers} == {("pd_master ${MASTER_IP}:1212", False)}
