"""The doctor's command line as CI uses it: exit codes, output formats, selection, suppression, settings, fixes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import jsonschema
import pytest

from conftest import EXAMPLES, FIXTURES

SEED = EXAMPLES / "seed-broken.yaml"
FIXED = EXAMPLES / "seed-fixed.yaml"


def test_seed_broken_exits_1_with_dg101_at_the_decode_worker(cli):
    r = cli("doctor", SEED)
    assert r.code == 1
    line = next(i for i, t in enumerate(SEED.read_text().splitlines(), 1) if t.startswith("VllmWorker:"))
    assert f"{SEED}:{line}:1: DG101 [error]" in r.out
    assert "VllmWorker:" in r.out and "^^^^^^^^^^" in r.out  # the source line and a caret under it
    assert "fix: set `remote-prefill: true`" in r.out


def test_clean_config_exits_0(cli):
    r = cli("doctor", FIXED)
    assert r.code == 0, r.out
    assert "All checks passed: 1 prefill/decode pair checked in 1 file." in r.out


def test_json_has_the_finding_fields(cli):
    r = cli("doctor", SEED, "--output-format", "json")
    doc = r.json()
    f = next(f for f in doc["findings"] if f["code"] == "DG101")
    for key in ("code", "name", "severity", "message", "path", "line", "column", "fix"):
        assert key in f
    assert f["severity"] == "error" and f["name"] == "remote-prefill-disabled"
    assert f["fix"]["edits"][0]["kind"] == "insert_after"
    assert doc["errors"] == []


def test_sarif_validates_against_the_official_schema(cli, write):
    bad = write("VllmWorker: [", "broken.yaml")
    r = cli("doctor", SEED, EXAMPLES / "disagg-router.yaml", bad, "--output-format", "sarif", "--workload", "isl=200")
    assert r.code == 2  # the unreadable file
    sarif = r.json()
    schema = json.loads((FIXTURES / "sarif-schema-2.1.0.json").read_text())
    jsonschema.validate(sarif, schema)
    run = sarif["runs"][0]
    ids = [res["ruleId"] for res in run["results"]]
    assert "DG101" in ids and "DG102" in ids
    assert run["invocations"][0]["toolExecutionNotifications"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] == 1
    dg101 = next(res for res in run["results"] if res["ruleId"] == "DG101")
    assert dg101["fixes"][0]["artifactChanges"][0]["replacements"][0]["insertedContent"]["text"].strip() == "remote-prefill: true"


def test_github_annotations(cli):
    r = cli("doctor", SEED, "--output-format", "github")
    assert r.code == 1
    first = r.out.splitlines()[0]
    assert first.startswith(f"::error file={SEED},line=")
    assert ",col=1," in first and "title=DG101 remote-prefill-disabled::" in first


def test_junit_lists_each_finding_as_a_failure(cli):
    r = cli("doctor", SEED, FIXED, "--output-format", "junit")
    root = ET.fromstring(r.out.split("\n", 1)[1])
    suites = {s.get("name"): s for s in root}
    assert int(suites[str(SEED)].get("failures")) >= 1
    assert suites[str(FIXED)].get("failures") == "0"
    assert root.find(".//failure").get("type") == "error"


def test_select_ignore_and_unknown_selector(cli):
    assert cli("doctor", SEED, "--ignore", "DG101,DG102").code == 0
    assert cli("doctor", SEED, "--select", "DG4").code == 0
    r = cli("doctor", SEED, "--select", "DG2", "--extend-select", "DG101", "--output-format", "json")
    assert {f["code"] for f in r.json()["findings"]} == {"DG101"}
    bad = cli("doctor", SEED, "--select", "DG9")
    assert bad.code == 2 and "unknown rule selector" in bad.err


def test_exit_zero_and_fail_level(cli):
    assert cli("doctor", SEED, "--exit-zero").code == 0
    # DG102 (info, the default threshold) alone does not fail at the default level, but does at info.
    assert cli("doctor", SEED, "--select", "DG102").code == 0
    assert cli("doctor", SEED, "--select", "DG102", "--fail-level", "info").code == 1


def test_noqa_comment_suppresses_on_its_line(cli, write):
    text = SEED.read_text().replace("VllmWorker:\n", "VllmWorker:  # disagg: noqa: DG101\n")
    r = cli("doctor", write(text), "--output-format", "json")
    assert "DG101" not in {f["code"] for f in r.json()["findings"]}
    text = SEED.read_text().replace("VllmWorker:\n", "VllmWorker:  # disagg: noqa: DG2\n")
    r = cli("doctor", write(text), "--output-format", "json")
    assert "DG101" in {f["code"] for f in r.json()["findings"]}


def test_pyproject_settings_apply_and_flags_override(cli, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.disagg]\nignore = ["DG101"]\noutput-format = "json"\n')
    r = cli("doctor", SEED)
    assert r.code == 0 and "DG101" not in r.out and r.json()["findings"] is not None
    r = cli("doctor", SEED, "--output-format", "text", "--select", "DG101", "--ignore", "DG4")
    assert "DG101" not in r.out  # settings' ignore still applies: flags extend it


def test_bad_pyproject_setting_is_a_usage_error(cli, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.disagg]\nselct = ["DG1"]\n')
    r = cli("doctor", SEED)
    assert r.code == 2 and "unknown key 'selct'" in r.err


def test_folder_search_skips_other_yaml(cli, tmp_path, write):
    write(SEED.read_text(), "deploy/a.yaml")
    write("apiVersion: v1\nkind: ConfigMap\n", "deploy/other.yml")
    write("not: yaml: at: all", "deploy/notes.txt")
    r = cli("doctor", tmp_path / "deploy", "--output-format", "json")
    files = {f["path"].rsplit("/", 1)[-1]: f["status"] for f in r.json()["files"]}
    assert files == {"a.yaml": "linted", "other.yml": "skipped"}
    assert r.code == 1


def test_explicit_non_config_file_is_an_error(cli, write):
    r = cli("doctor", write("router:\n  policy: round_robin\n"))
    assert r.code == 2 and "not a recognised config" in r.out


def test_a_kubernetes_kind_no_reader_reads_is_listed_not_an_error(cli, write):
    path = write("apiVersion: v1\nkind: ConfigMap\n")
    r = cli("doctor", "-v", path)
    assert r.code == 0 and "skipped: not a serving config I know: v1/ConfigMap" in r.out
    assert cli("doctor", "--require-files", path).code == 2  # asked for a config, none found


def test_stdin(cli, monkeypatch):
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", type("S", (), {"buffer": io.BytesIO(SEED.read_bytes())})())
    r = cli("doctor", "-")
    assert r.code == 1 and "<stdin>:" in r.out


def test_explain_and_rules(cli):
    r = cli("doctor", "--explain", "dg101")
    assert r.code == 0 and "## Why is this bad?" in r.out and "remote-prefill" in r.out
    assert cli("doctor", "--explain", "DG999").code == 2
    by_name = cli("doctor", "--explain", "remote-prefill-disabled")  # ruff's `rule` takes a name as well as a code
    assert by_name.code == 0 and by_name.out.startswith("DG101 remote-prefill-disabled")
    r = cli("rules", "--output-format", "json")
    assert {x["code"] for x in json.loads(r.out)} >= {"DG101", "DG404"}


def test_fix_on_a_flow_mapping_says_it_was_not_applied(cli, write, capsys):
    text = "Frontend: {served_model_name: m}\nVllmWorker: {model: m, conditional-disagg: true}\nPrefillWorker: {model: m}\n"
    path = write(text)
    r = cli("doctor", path, "--fix", "--select", "DG101")
    assert r.code == 1 and path.read_text() == text
    assert "fix (by hand: --fix does not edit a flow mapping)" in r.out
    assert "fix not applied to 1 finding(s) on a flow mapping" in r.err


def test_the_summary_counts_fixable_findings(cli):
    r = cli("doctor", SEED)
    assert r.out.rstrip().endswith("1 fixable with --fix."), r.out


def test_fix_inserts_remote_prefill_and_the_config_is_then_clean_of_dg101(cli, write):
    path = write(SEED.read_text())
    r = cli("doctor", path, "--fix", "--select", "DG101")
    assert r.code == 0, r.out
    text = path.read_text()
    assert "VllmWorker:\n  remote-prefill: true\n" in text
    assert cli("doctor", path, "--select", "DG101").code == 0


def test_workload_prediction_in_json(cli):
    r = cli("doctor", FIXED, EXAMPLES / "seed-broken.yaml", "--workload", "isl=200,osl=10", "--output-format", "json")
    files = {f["path"].rsplit("/", 1)[-1]: f for f in r.json()["files"]}
    assert files["seed-fixed.yaml"]["prediction"]["remote_share"] == 1.0
    assert files["seed-broken.yaml"]["prediction"]["reasons"] == {"disabled": 1}
    assert "not predicted" in files["seed-fixed.yaml"]["prediction"]["queue"]


def test_workload_trace(cli, write):
    trace = write("\n".join(json.dumps({"input_length": n, "output_length": 10}) for n in (5, 50, 500, 5000)), "trace.jsonl")
    r = cli("doctor", FIXED, "--workload", trace, "--output-format", "json")
    pred = r.json()["files"][0]["prediction"]
    assert pred == {"requests": 4, "remote_share": 0.75, "reasons": {"below_threshold": 1, "remote": 3}, "queue": pred["queue"]}


@pytest.mark.parametrize(
    "spec, message",
    [("isl=abc", "isl=abc"), ("osl=3", "isl= (prompt tokens) is required"), ("isl=3,foo=1", "unknown key"), ("isl=3,prefix-hit=2", "within 0..1")],
)
def test_bad_workload_is_a_usage_error(cli, spec, message):
    r = cli("doctor", FIXED, "--workload", spec)
    assert r.code == 2 and message in r.err


def test_bad_trace_line_names_its_line(cli, write):
    trace = write('{"input_length": 10}\n{"input_length": \n', "t.jsonl")
    r = cli("doctor", FIXED, "--workload", trace)
    assert r.code == 2 and f"{trace}:2:" in r.err


def test_no_paths_is_a_usage_error(cli):
    r = cli("doctor")
    assert r.code == 2 and "no config given" in r.err


def test_skip_unrecognized_for_pre_commit(cli, write):
    other = write("name: ci\non: [push]\njobs: {}\n", "workflow.yml")
    assert cli("doctor", other).code == 2
    r = cli("doctor", other, SEED, "--skip-unrecognized", "--output-format", "json")
    assert r.code == 1 and {f["status"] for f in r.json()["files"]} == {"skipped", "linted"}
