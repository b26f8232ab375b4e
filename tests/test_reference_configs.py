"""Real public configs (../shared/reference): Dynamo v0.1.0 shipped the seed bug; v0.3 fixed it."""

from __future__ import annotations

import pytest

from conftest import REFERENCE

pytestmark = pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/reference is not beside this checkout")


def test_v010_disagg_router_is_the_seed_case(cli):
    path = REFERENCE / "old_1f6ccc7f_disagg_router.yaml"
    r = cli("doctor", path, "--output-format", "json")
    assert r.code == 1
    dg101 = [f for f in r.json()["findings"] if f["code"] == "DG101"]
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if t.startswith("VllmWorker:"))
    assert [(f["line"], f["column"]) for f in dg101] == [(line, 1)]


def test_v03_disagg_router_has_no_dg101(cli):
    r = cli("doctor", REFERENCE / "old_f00d700e_disagg_router.yaml", "--output-format", "json")
    assert "DG101" not in {f["code"] for f in r.json()["findings"]}
    assert r.code == 0


def test_benchmarks_config_pulls_a_key_common_lacks(cli):
    r = cli("doctor", REFERENCE / "old_f00d700e_benchmarks_disagg.yaml", "--output-format", "json")
    assert [f["code"] for f in r.json()["findings"] if f["severity"] != "info"] == ["DG403"]


def test_every_reference_config_reads_without_error(cli):
    r = cli("doctor", REFERENCE, "--output-format", "json", "--exit-zero")
    assert r.code == 0 and r.json()["errors"] == []
    assert len(r.json()["files"]) == len(list(REFERENCE.glob("*.yaml")))
