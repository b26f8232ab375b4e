"""Rule tests as data: each tests/rules/cases/DGxxx.yml holds failing and passing configs for one rule."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from disagg.doctor.context import LintOptions
from disagg.doctor.engine import lint_text
from disagg.doctor.finding import apply_edits, overlapping
from disagg.doctor.registry import default_registry
from disagg.doctor.workload import parse_workload

CASES = Path(__file__).resolve().parent / "cases"


def _cases(live: bool, host: bool = False):
    for path in sorted(CASES.glob("DG*.yml")):
        spec = yaml.safe_load(path.read_text())
        if bool(spec.get("live")) != live or bool(spec.get("host")) != host:
            continue
        for case in spec["cases"]:
            yield pytest.param(spec["rule"], case, id=f"{spec['rule']}: {case['name']}")


@pytest.mark.parametrize("code, case", list(_cases(live=True)))
def test_live_rule_case(code, case):
    """Live rules run over frames: Prometheus text (and workers) per tick, one second apart unless `t` says."""
    from live.frames import snapshot

    from disagg.doctor.live.diagnose import LiveContext
    from disagg.doctor.live.window import Window

    rule = default_registry().get(code)
    assert rule is not None and rule.live
    window = Window(seconds=60)
    for i, frame in enumerate(case["frames"]):
        window.add(snapshot(frame.get("t", i), frame["metrics"], frame.get("workers"), frame.get("worker_metrics"), frame.get("utilisation"),
                            frame.get("frontend_error")))
    parse, static = None, []
    if "config" in case:
        result = lint_text("case.yaml", case["config"], [r for r in default_registry() if not r.live], LintOptions())
        parse, static = result.deployment, result.findings
    ctx = LiveContext(window=window, target="http://frontend", deployment=parse, static=static, probe=case.get("probe"))
    got = list(rule().check(ctx))
    want = case["expect"]
    assert len(got) == len(want), [f.message for f in got]
    for f, w in zip(got, want):
        for key in ("cause",):
            if key in w:
                assert f.extra.get(key) == w[key], f.extra
        if "severity" in w:
            assert f.severity.label == w["severity"]
        if "line" in w:
            assert (f.line, f.column) == (w["line"], w["column"]), f
        if "message" in w:
            assert w["message"] in f.message, f.message
        assert f.fix is not None and "evidence" in f.extra and 0 < f.extra["confidence"] <= 1
        assert f.severity in (rule.severity, *rule.also), f"{code} emitted {f.severity.label}, documented: {rule.severities()}"


def host_facts(spec: dict):
    from disagg.doctor.host import Gpu, HostFacts, Nic, RdmaPort

    return HostFacts(nics=[Nic(**{"state": "up", "numa_node": None, "virtual": False, "link": "ether", **n}) for n in spec.get("nics", [])],
                     rdma=[RdmaPort(**{"port": 1, "link_layer": "InfiniBand", "state": "4: ACTIVE", "gids": 1, "numa_node": None, **r}) for r in spec.get("rdma", [])],
                     gpus=[Gpu(**{"name": "H100", "pci": f"0000:{i:02x}:00.0", "numa_node": None, **g}) for i, g in enumerate(spec.get("gpus", []))],
                     nixl=spec.get("nixl", {}))


@pytest.mark.parametrize("code, case", list(_cases(live=True, host=True)))
def test_host_rule_case(code, case):
    """Host rules (DG7xx) over facts given as data (the readers of sysfs are tested in tests/test_env.py), this shell's
    environment (`env`) and, when the case has one, a config whose workers' env is compared."""
    from disagg.doctor.host import HostContext

    rule = default_registry().get(code)
    assert rule is not None and (rule.live or getattr(rule, "reads_configs", False))  # DG703 also runs on configs alone
    deps = []
    if "config" in case:
        result = lint_text(case.get("config_name", "case.yaml"), case["config"], [], LintOptions())
        assert result.error is None, result.error
        deps = [result.deployment]
    got = list(rule().check(HostContext(host_facts(case.get("facts", {})), case.get("env", {}), deps)))
    assert len(got) == len(case["expect"]), [f.message for f in got]
    for f, w in zip(got, case["expect"]):
        if "severity" in w:
            assert f.severity.label == w["severity"]
        if "line" in w:
            assert (f.path, f.line) == ("case.yaml", w["line"]), f
        if "message" in w:
            assert w["message"] in f.message, f.message
        assert f.fix is not None and f.severity in (rule.severity, *rule.also)
    assert not list(rule().check(object())), "a host rule says nothing outside a HostContext"


@pytest.mark.parametrize("code, case", list(_cases(live=False)))
def test_rule_case(code, case):
    rule = default_registry().get(code)
    assert rule is not None, f"{code} has a case file but is not registered"
    opts = case.get("options", {})
    options = LintOptions(gpus=opts.get("gpus"), workload=parse_workload(opts["workload"]) if "workload" in opts else None,
                          target={k: str(v) for k, v in opts.get("target", {}).items()})
    result = lint_text(case.get("path", "case.yaml"), case["config"], [rule], options)
    assert result.error is None, result.error
    got = [f for f in result.findings if f.code == code]
    want = case["expect"]
    assert [(f.line, f.column) for f in got] == [(w["line"], w["column"]) for w in want], [f.message for f in got]
    for f, w in zip(got, want):
        if "severity" in w:
            assert f.severity.label == w["severity"], f.message
        if "message" in w:
            assert w["message"] in f.message, f.message
        assert f.fix is not None and f.fix.title, f"{code} finding without a fix title"
        assert f.severity in (rule.severity, *rule.also), f"{code} emitted {f.severity.label}, documented: {rule.severities()}"
    if "fixed" in case:
        edits = [e for f in got if f.fix for e in f.fix.edits]
        assert apply_edits(case["config"], edits) == case["fixed"]


@pytest.mark.parametrize("safe_only", [True, False], ids=["safe", "unsafe"])
@pytest.mark.parametrize("code, case", list(_cases(live=False)))
def test_fixes_leave_a_file_that_reads_and_gains_no_error(code, case, safe_only):
    """ruff's fix check over every rule case: after the safe fixes the file reads and has no new error; after the unsafe
    ones too it still reads (an unsafe fix may surface a problem the old setting hid: that is why it is unsafe)."""
    rules = [r for r in default_registry() if not r.live]
    opts = case.get("options", {})
    options = LintOptions(gpus=opts.get("gpus"), target={k: str(v) for k, v in opts.get("target", {}).items()})
    path = case.get("path", "case.yaml")
    before = lint_text(path, case["config"], rules, options)
    edits: list = []
    for f in before.findings:
        if f.fix and f.fix.edits and (f.fix.safe or not safe_only) and not overlapping(edits + list(f.fix.edits)):
            edits.extend(f.fix.edits)
    if not edits:
        return
    after = lint_text(path, apply_edits(case["config"], edits), rules, options)
    assert after.error is None, after.error
    if safe_only:
        new = {(f.code, f.message) for f in after.findings if f.severity.label == "error"} - {(f.code, f.message) for f in before.findings}
        assert not new, new


def test_every_rule_has_failing_and_passing_cases():
    for rule in default_registry():
        path = CASES / f"{rule.code}.yml"
        assert path.is_file(), f"{rule.code} has no case file {path.name}"
        cases = yaml.safe_load(path.read_text())["cases"]
        assert any(c["expect"] for c in cases), f"{rule.code}: no failing case"
        assert any(not c["expect"] for c in cases), f"{rule.code}: no passing case"
