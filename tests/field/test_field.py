"""Precision as a test: on real public configs every warning or error is one the team judged true, with a source."""

from __future__ import annotations

import shutil

import pytest

from .corpus import FIELD, judgement, run, score

pytestmark = pytest.mark.skipif(not FIELD.is_dir(), reason="../shared/field/ is not beside this checkout (CI has it)")


@pytest.fixture(scope="module")
def results():
    return run()


def test_every_warning_and_error_is_judged_true(results):
    s = score(results)
    assert not s["unreadable"], s["unreadable"]
    assert not s["unjudged"], f"findings nobody judged (judge them in tests/field/judgement.yaml, with a source): {s['unjudged']}"
    assert not s["missing"], f"judged findings the doctor no longer makes: {s['missing']}"


def test_the_known_real_problems_are_found(results):
    assert score(results)["recall_known"] == 1.0


def test_both_sides_are_linked_in_files_that_hold_a_deployment(results):
    s = score(results)
    assert s["coverage"] >= 0.95, s["unlinked"]


def test_every_judgement_cites_a_source():
    for j in judgement()["findings"]:
        assert j.get("reason") and j.get("source"), j


def test_fixes_leave_parseable_files_and_add_no_error(tmp_path, cli):
    """`--fix --unsafe-fixes` on copies of every field file: each still reads, and gains no error."""
    copy = tmp_path / "field"
    shutil.copytree(FIELD, copy)
    before = cli("doctor", copy, "--output-format", "json", "--exit-zero").json()
    r = cli("doctor", copy, "--fix", "--unsafe-fixes", "--exit-zero", "--output-format", "json")
    after = r.json()
    assert not after["errors"], after["errors"]
    errors = lambda doc: {(f["path"], f["code"]) for f in doc["findings"] if f["severity"] == "error"}  # noqa: E731
    assert errors(after) <= errors(before)
