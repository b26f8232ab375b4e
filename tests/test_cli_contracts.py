"""Small promises of the command line that CI integrations and editors rely on: valid SARIF URIs, JUnit notes that
are not failures, noqa codes that must be codes, fixes that keep line endings and never claim an edit they did not
make, and an empty selection that says so."""

from __future__ import annotations

import json
import urllib.parse
import xml.etree.ElementTree as ET

from conftest import EXAMPLES, ROOT
from disagg.doctor.finding import Edit, overlapping

SEED = EXAMPLES / "seed-broken.yaml"


def test_sarif_uris_are_valid_for_paths_with_spaces_and_hashes_and_for_stdin(cli, write, monkeypatch):
    import io
    import sys

    path = write(SEED.read_text(), "my dir#1/seed.yaml")
    monkeypatch.chdir(path.parent.parent)
    r = cli("doctor", "my dir#1/seed.yaml", "--output-format", "sarif")
    uris = {res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for res in json.loads(r.out)["runs"][0]["results"]}
    assert uris == {"my%20dir%231/seed.yaml"}
    assert urllib.parse.unquote(next(iter(uris))) == "my dir#1/seed.yaml"
    monkeypatch.setattr(sys, "stdin", type("S", (), {"buffer": io.BytesIO(SEED.read_bytes())})())
    r = cli("doctor", "-", "--output-format", "sarif")
    assert {res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for res in json.loads(r.out)["runs"][0]["results"]} == {"stdin"}


def test_junit_notes_are_output_not_failures(cli):
    r = cli("doctor", SEED, "--output-format", "junit")
    suite = ET.fromstring(r.out.split("\n", 1)[1])[0]
    cases = {c.get("name").split()[0]: c for c in suite}
    assert cases["DG101"].find("failure") is not None
    assert cases["DG102"].find("failure") is None and cases["DG102"].find("system-out") is not None  # an info note
    assert suite.get("failures") == "1"


def test_a_noqa_code_that_is_no_code_suppresses_nothing(cli, write):
    text = SEED.read_text().replace("VllmWorker:\n", "VllmWorker:  # disagg: noqa: DG1O1\n")
    r = cli("doctor", write(text), "--output-format", "json", "--select", "DG101")
    assert [f["code"] for f in r.json()["findings"]] == ["DG101"]


def test_fix_keeps_crlf_line_endings(cli, write):
    path = write(SEED.read_bytes().replace(b"\n", b"\r\n"))
    r = cli("doctor", path, "--fix", "--select", "DG101")
    data = path.read_bytes()
    assert r.code == 0 and b"  remote-prefill: true\r\n" in data
    assert data.count(b"\n") == data.count(b"\r\n")


def test_overlapping_edits_are_never_applied_together():
    a = Edit("replace", 3, 1, 3, 10, "x")
    assert overlapping([a, Edit("replace", 3, 5, 3, 8, "y")])
    assert overlapping([a, Edit("delete", 2, 1, 4, 1)])
    assert not overlapping([a, Edit("replace", 4, 1, 4, 3, "z")])


def test_an_empty_selection_says_so_and_can_fail(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    r = cli("doctor", tmp_path / "empty")
    assert r.code == 0 and "No config files found" in r.out
    r = cli("doctor", tmp_path / "empty", "--require-files")
    assert r.code == 2 and "no config files found" in r.err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "mkdocs.yml").write_text("site_name: x\n")
    r = cli("doctor", tmp_path / "other", "--require-files")
    assert r.code == 2


def test_this_repository_is_never_a_usage_error(cli, monkeypatch):
    """`disagg doctor .` here: the fixture repository's mkdocs, Helm, Ansible and CloudFormation files are skipped; the broken examples and fixtures are findings (exit 1), never exit 2."""
    monkeypatch.chdir(ROOT)
    r = cli("doctor", ".", "--output-format", "json")
    assert r.code == 1, r.err
    statuses = {f["path"]: f["status"] for f in r.json()["files"]}
    assert statuses["./tests/fixtures/precommit-repo/mkdocs.yml"] == "skipped"
    assert not [p for p, s in statuses.items() if s not in ("linted", "skipped")], statuses


def test_the_multi_host_example_is_clean_and_its_pair_is_checked(cli):
    """examples/multi-host: the config every host runs and the cluster manifests lint clean (the README says so)."""
    r = cli("doctor", EXAMPLES / "multi-host", "--output-format", "json")
    assert r.code == 0, r.out
    doc = r.json()
    assert doc["findings"] == [] and doc["summary"]["pairs_checked"] == 1
    # The manifests start `disagg serve`, which runs no engine the doctor reads: skipped, not "no pair formed"
    assert {f["path"].rsplit("/", 1)[1]: f["status"] for f in doc["files"]} == {"config.yaml": "linted", "k8s.yaml": "skipped"}
