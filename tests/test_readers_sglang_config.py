"""SGLang server-argument files (schemas/readers/sglang_config.py): the YAML that `--config FILE` turns into flags,
read alone as one SGLang server, or as the flags of the command line in the run that names it (fixtures in
tests/fixtures/readers/sglang-config/, written for these tests)."""

from __future__ import annotations

import shutil
from pathlib import Path

from test_readers import HERE, RULES, lint

from disagg.doctor.context import LintOptions
from disagg.doctor.engine import lint_paths, lint_text
from disagg.schemas.model import Unknown

CONFIGS = HERE / "sglang-config"


def _codes(results, *severities: str) -> set[str]:
    return {f.code for r in results for f in r.findings if f.severity.label in severities}


def test_a_file_of_sglang_server_args_is_one_sglang_server_with_its_role_from_disaggregation_mode():
    r = lint("sglang-config/alone/prefill-args.yaml")
    assert not r.error and not r.skipped and r.deployment.format == "sglang-config"
    (w,) = r.deployment.workers
    assert (w.program, w.engine, w.role, w.role_from) == ("sglang", "sglang", "prefill", "flag")
    assert w.settings["transfer_backend"].value == "nixl" and w.settings["transfer_backend"].span.line == 5
    assert str(w.settings["tp"].value) == "4"
    assert "disable-radix-cache" not in w.flags  # `false` adds no flag (ConfigArgumentMerger)
    # the command line that reads the file is not in it: what it adds, and every default, is unknown
    assert isinstance(w.settings["opaque_args"].value, Unknown)
    assert "model" not in w.settings


def test_two_files_of_one_folder_pair_by_served_model_name_and_a_backend_mismatch_is_an_error(tmp_path):
    shutil.copytree(CONFIGS / "alone", tmp_path / "alone")
    results = lint_paths([str(tmp_path / "alone")], RULES, LintOptions())
    assert not _codes(results, "warning", "error")
    pair = next(p for r in results for p in r.pairs)
    assert "same served model name (acme/chat-13b)" in pair.why
    decode = tmp_path / "alone" / "decode-args.yaml"
    decode.write_text(decode.read_text().replace("disaggregation-transfer-backend: nixl", "disaggregation-transfer-backend: mooncake"))
    assert "DG611" in _codes(lint_paths([str(tmp_path / "alone")], RULES, LintOptions()), "error")


def test_another_served_model_name_is_no_pair(tmp_path):
    shutil.copytree(CONFIGS / "alone", tmp_path / "alone")
    decode = tmp_path / "alone" / "decode-args.yaml"
    decode.write_text(decode.read_text().replace("served-model-name: acme/chat-13b", "served-model-name: acme/other"))
    results = lint_paths([str(tmp_path / "alone")], RULES, LintOptions())
    assert not any(r.pairs for r in results)


def test_a_misspelt_mode_in_the_file_is_reported():
    text = (CONFIGS / "alone" / "prefill-args.yaml").read_text().replace("disaggregation-mode: prefill", "disaggregation-mode: prefil")
    r = lint_text("prefill-args.yaml", text, RULES, LintOptions())
    assert any(f.code == "DG214" and f.severity.label == "warning" and f.line == 4 for f in r.findings), r.findings


def test_only_sglang_flags_make_a_server_args_file():
    # a key SGLang has no flag for: argparse would refuse it, so this is no SGLang server-argument file
    assert lint_text("x.yaml", "tp-size: 4\nmem-fraction-static: 0.8\nreplicas: 2\n", RULES, LintOptions()).deployment is None
    # every key also a vLLM flag: vLLM's --config reads such a file as well, nothing says which engine it is for
    assert lint_text("x.yaml", "host: 0.0.0.0\nport: 8000\ntensor-parallel-size: 2\n", RULES, LintOptions()).deployment is None
    # SGLang's merger writes `--KEY` as the key is written: `tp_size` is no flag of SGLang's parser
    assert lint_text("x.yaml", "tp_size: 4\nmem_fraction_static: 0.8\n", RULES, LintOptions()).deployment is None


def test_a_config_file_in_the_run_gives_the_command_line_its_flags_and_the_command_line_wins(tmp_path):
    shutil.copytree(CONFIGS / "launched", tmp_path / "launched")
    results = lint_paths([str(tmp_path / "launched")], RULES, LintOptions())
    script = next(r for r in results if r.path.endswith("serve.sh"))
    p, d = sorted(script.deployment.workers, key=lambda w: w.role, reverse=True)
    assert (p.role, d.role) == ("prefill", "decode") and "pd-args/p.yaml, read by --config" in p.role_why
    assert str(p.settings["tp"].value) == "2"  # --tp-size 2 on the command line comes after the file's 4
    assert str(d.settings["tp"].value) == "2" and "pd-args/d.yaml" in d.settings["tp"].origin
    assert p.settings["transfer_backend"].value == "mooncake" and "opaque_args" not in p.settings
    assert any(pair.why == "same file" for pair in script.pairs)
    # the files themselves are that command line's: no second server of their own
    assert all(not r.deployment.workers for r in results if r.path.endswith((".yaml",)))
    (tmp_path / "launched" / "pd-args" / "d.yaml").write_text(
        (CONFIGS / "launched" / "pd-args" / "d.yaml").read_text().replace("backend: mooncake", "backend: nixl"))
    assert "DG611" in _codes(lint_paths([str(tmp_path / "launched")], RULES, LintOptions()), "error")


def test_without_its_config_file_the_command_lines_flags_stay_unknown():
    r = lint_text("serve.sh", (CONFIGS / "launched" / "serve.sh").read_text(), RULES, LintOptions())
    assert all(isinstance(w.settings["opaque_args"].value, Unknown) for w in r.deployment.workers)
    assert all(w.role == "aggregated" for w in r.deployment.workers)


def test_a_config_path_that_names_no_file_of_the_run_is_not_taken_from_a_file_of_the_same_name(tmp_path):
    folder = tmp_path / "launched"
    shutil.copytree(CONFIGS / "launched", folder)
    Path(folder / "pd-args").rename(folder / "elsewhere")
    results = lint_paths([str(folder)], RULES, LintOptions())
    script = next(r for r in results if r.path.endswith("serve.sh"))
    assert all("opaque_args" in w.settings for w in script.deployment.workers)
