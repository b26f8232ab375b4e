"""`disagg doctor --emit-alerts`: the rules Prometheus loads (promtool check rules), each alert firing on the series of
its failure and silent on a healthy deployment's (promtool test rules), the PrometheusRule form, and the systems
picked from the files given. promtool comes with Debian's prometheus package, which .ci/run installs."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from disagg.doctor.live.alerts import alerts
from disagg.doctor.registry import default_registry

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (apt-get install prometheus)")


def emit(cli, *args) -> dict:
    r = cli("doctor", "--emit-alerts", *args)
    assert r.code == 0, r.err
    return yaml.safe_load(r.out)


@needs_promtool
def test_rules_load_and_every_alert_fires_on_its_failure_only(cli, tmp_path):
    rules = tmp_path / "disagg-alerts.yaml"
    rules.write_text(cli("doctor", "--emit-alerts").out)
    tests = tmp_path / "disagg-alerts-test.yaml"
    tests.write_text(cli("doctor", "--emit-alerts=tests", "--alert-rule-file", rules.name).out)
    check = subprocess.run([PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"{len(alerts())} rules found" in check.stdout
    unit = subprocess.run([PROMTOOL, "test", "rules", tests.name], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert unit.returncode == 0, unit.stdout + unit.stderr
    assert "SUCCESS" in unit.stdout + unit.stderr


@needs_promtool
def test_a_broken_expectation_fails_the_unit_tests(cli, tmp_path):
    """The unit tests can fail: a healthy deployment's series expected to fire is a failure promtool reports."""
    (tmp_path / "disagg-alerts.yaml").write_text(cli("doctor", "--emit-alerts").out)
    tests = yaml.safe_load(cli("doctor", "--emit-alerts=tests").out)
    quiet = next(t for t in tests["tests"] if not t["alert_rule_test"][0]["exp_alerts"])
    quiet["alert_rule_test"][0]["exp_alerts"] = [{"exp_labels": {"severity": "critical"}}]
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(tests))
    unit = subprocess.run([PROMTOOL, "test", "rules", "t.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert unit.returncode != 0


def test_each_alert_names_a_live_rule_that_explains_it(cli):
    registry = default_registry()
    doc = emit(cli)
    names = [r["alert"] for g in doc["groups"] for r in g["rules"]]
    assert len(names) == len(set(names)) == len(alerts())
    for g in doc["groups"]:
        for r in g["rules"]:
            rule = registry.get(r["labels"]["dg_code"])
            assert rule is not None and rule.live, r
            assert f"--explain {rule.code}" in r["annotations"]["description"]


def test_prometheus_rule_form(cli):
    doc = emit(cli, "--emit-alerts=prometheusrule") if False else yaml.safe_load(cli("doctor", "--emit-alerts=prometheusrule").out)
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PrometheusRule"
    assert doc["spec"] == emit(cli)


def test_systems_come_from_the_files_given(cli):
    from pathlib import Path

    examples = Path(__file__).resolve().parents[2] / "examples"
    doc = yaml.safe_load(cli("doctor", "--emit-alerts", str(examples / "seed-fixed.yaml")).out)
    assert [g["name"] for g in doc["groups"]] == ["disagg-doctor-disagg"]  # `disagg serve` runs a Dynamo v0 config


def test_an_llm_d_router_config_gets_the_llm_d_alerts(cli):
    from pathlib import Path

    epp = Path(__file__).resolve().parents[1] / "fixtures" / "stacks" / "llm-d-pd-epp-config.yaml"
    doc = yaml.safe_load(cli("doctor", "--emit-alerts", str(epp)).out)
    assert [g["name"] for g in doc["groups"]] == ["disagg-doctor-llm-d"]
    assert [r["labels"]["dg_code"] for r in doc["groups"][0]["rules"]] == ["DG509"]
