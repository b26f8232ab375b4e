"""A rule or a reader that raises is contained: the run goes on, the failure is an internal error with the rule's
code and where it happened, the other findings still print, and the exit code is 3 (not 1, findings; not 2, input)."""

from __future__ import annotations

import json

import pytest

from conftest import EXAMPLES, FIXTURES
from disagg.doctor.finding import Severity
from disagg.doctor.registry import Rule, default_registry

SEED = EXAMPLES / "seed-broken.yaml"
SARIF_SCHEMA = FIXTURES / "sarif-schema-2.1.0.json"


class Boom(Rule):
    """## What it does
    Raises on the first prefill worker it looks at (a test rule standing for a bug in a rule).

    ## Why is this bad?
    It is not: it stands for a bug.

    ## Example
    ```yaml
    PrefillWorker: {}
    ```

    ## Use instead
    ```yaml
    PrefillWorker: {}
    ```
    """

    code = "DG999"
    name = "test-boom"
    severity = Severity.WARNING

    def check(self, ctx):
        for w in ctx.deployment.workers:
            if w.role == "prefill":
                raise KeyError("no-such-setting")
        yield from ()


@pytest.fixture
def boom(monkeypatch):
    monkeypatch.setitem(default_registry()._rules, "DG999", Boom)
    return Boom


def test_a_rule_that_raises_is_an_internal_error_and_the_rest_still_print(cli, boom):
    clean = cli("doctor", SEED, "--ignore", "DG999", "--output-format", "json").json()["findings"]
    r = cli("doctor", SEED)
    assert r.code == 3, r.out + r.err
    assert "Traceback" not in r.out + r.err
    assert "DG101 [error]" in r.out  # the other rules' findings still print
    line = next(i for i, t in enumerate(SEED.read_text().splitlines(), 1) if t.startswith("PrefillWorker:"))
    assert f"{SEED}:{line}:1: DG999 [error] internal error: rule DG999 raised KeyError: 'no-such-setting'" in r.out  # at the worker it checked
    assert "while checking PrefillWorker" in r.out and "1 internal error" in r.out
    doc = cli("doctor", SEED, "--output-format", "json").json()
    internal = [f for f in doc["findings"] if f["code"] == "DG999"]
    assert len(internal) == 1 and internal[0]["name"] == "internal-error" and internal[0]["internal_error"]["exception"] == "KeyError"
    assert [f for f in doc["findings"] if f["code"] != "DG999"] == clean
    assert doc["summary"]["internal_errors"] == 1


def test_internal_error_wins_over_exit_zero_and_noqa(cli, boom, write):
    text = SEED.read_text().replace("PrefillWorker:", "PrefillWorker:  # disagg: noqa")
    path = write(text, "seed.yaml")
    assert cli("doctor", path, "--exit-zero").code == 3
    assert "DG999" in cli("doctor", path).out


def test_a_file_without_the_failing_case_exits_as_before(cli, boom):
    agg = EXAMPLES / "agg.yaml"
    r = cli("doctor", agg)
    assert r.code in (0, 1) and "internal error" not in r.out


def test_sarif_reports_a_raising_rule_as_a_tool_notification(cli, boom):
    import jsonschema

    r = cli("doctor", SEED, "--output-format", "sarif")
    assert r.code == 3
    sarif = r.json()
    jsonschema.validate(sarif, json.loads(SARIF_SCHEMA.read_text()))
    run = sarif["runs"][0]
    assert "DG999" not in [res["ruleId"] for res in run["results"]] and "DG101" in [res["ruleId"] for res in run["results"]]
    note = run["invocations"][0]["toolExecutionNotifications"][0]
    assert note["associatedRule"]["id"] == "DG999" and not run["invocations"][0]["executionSuccessful"]


@pytest.mark.parametrize("fmt", ["github", "junit"])
def test_other_formats_carry_the_internal_error(cli, boom, fmt):
    r = cli("doctor", SEED, "--output-format", fmt)
    assert r.code == 3 and "DG999" in r.out and "DG101" in r.out


def test_a_reader_that_raises_fails_only_its_file(cli, write, monkeypatch):
    import disagg.doctor.files as files

    real = files.read_script

    def broken(path, text, target):
        if "bad" in path:
            raise TypeError("unsupported operand")
        return real(path, text, target)

    monkeypatch.setattr(files, "read_script", broken)
    cmd = "vllm serve m --kv-transfer-config '{\"kv_connector\":\"NixlConnector\",\"kv_role\":\"kv_both\"}' &\n"
    bad = write(cmd, "bad.sh")
    r = cli("doctor", bad, SEED)
    assert r.code == 3 and "Traceback" not in r.out + r.err
    assert f"{bad}:1:1: error: internal error: the reader raised TypeError: unsupported operand" in r.out
    assert "DG101 [error]" in r.out  # the other file was checked
    doc = cli("doctor", bad, SEED, "--output-format", "json").json()
    assert doc["errors"] == [{"path": str(bad), "line": 1, "column": 1, "message": doc["errors"][0]["message"], "internal": True}]
    assert doc["summary"]["unreadable"] == 0 and doc["summary"]["internal_errors"] == 1


def test_an_unreadable_file_is_still_exit_2_not_internal(cli, write):
    r = cli("doctor", write("VllmWorker: [", "broken.yaml"))
    assert r.code == 2 and "internal" not in r.out


def test_pairing_that_raises_leaves_the_rules_running_without_pairs(cli, monkeypatch):
    import disagg.doctor.check as check

    def broken(dep):
        raise IndexError("list index out of range")

    monkeypatch.setattr(check.pairing, "within", broken)
    r = cli("doctor", SEED)
    assert r.code == 3 and "Traceback" not in r.out + r.err
    assert f"{SEED}:1:1: error: internal error: pairing the workers raised IndexError: list index out of range" in r.out
    assert "DG101 [error]" in r.out  # a rule about one worker still ran
    doc = cli("doctor", SEED, "--output-format", "json").json()
    assert any(e["internal"] for e in doc["errors"]) and doc["summary"]["internal_errors"] == 1
