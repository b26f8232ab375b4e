"""The rule registry: documented rules, unique codes, selection by code, prefix and ALL."""

from __future__ import annotations

import re

import pytest

from disagg.doctor.finding import Severity
from disagg.doctor.registry import DOC_SECTIONS, DuplicateRuleError, Rule, RuleRegistry, default_registry, doc_sections

REQUIRED = {
    "DG101", "DG102", "DG103", "DG104", "DG105", "DG106", "DG201", "DG202", "DG203", "DG204", "DG205", "DG206",
    "DG301", "DG302", "DG303", "DG401", "DG402", "DG403", "DG404",
}


def test_public_codes_exist():
    assert REQUIRED <= set(default_registry().codes())


@pytest.mark.parametrize("rule", list(default_registry()), ids=lambda r: r.code)
def test_rule_documents_itself(rule):
    sections = doc_sections(rule.doc())
    missing = [s for s in DOC_SECTIONS if not sections.get(s)]
    assert not missing, f"{rule.code} docstring lacks {missing}"
    assert re.search(r"```(yaml|sh|bash)\n", sections["Example"]) and re.search(r"```(yaml|sh|bash)\n", sections["Use instead"])  # a config or a command line
    assert rule.summary() and rule.name and rule.name == rule.name.lower()


def test_duplicate_codes_are_rejected():
    reg = RuleRegistry()

    class A(Rule):
        code, name, severity = "DG999", "a", Severity.INFO

    class B(Rule):
        code, name, severity = "DG999", "b", Severity.INFO

    reg.register(A)
    with pytest.raises(DuplicateRuleError):
        reg.register(B)


def test_selection_by_prefix_all_and_ignore():
    reg = default_registry()
    codes = lambda rules: {r.code for r in rules}  # noqa: E731
    assert codes(reg.select(["DG1"])) == {c for c in reg.codes() if c.startswith("DG1")}
    assert codes(reg.select(["ALL"], ignore=["DG4"])) == {c for c in reg.codes() if not c.startswith("DG4")}
    assert codes(reg.select(["DG101"], extend_select=["DG2"])) == {"DG101"} | {c for c in reg.codes() if c.startswith("DG2")}
    assert not reg.check_selector("XX1")


def test_every_rule_that_judges_a_pair_documents_the_info_a_name_only_role_gets():
    """A rule whose findings rest on prefill/decode roles (pair_finding, or roles= given) declares on_roles, so that the
    info a name-only role caps it to is in its documented severities (`disagg rules`, the README table)."""
    import inspect

    from disagg.doctor.registry import ROLE_GUESSED

    for rule in default_registry():
        source = inspect.getsource(inspect.getmodule(rule))
        if "pair_finding(" in source or "roles=(" in source or "roles=chosen" in source:
            assert rule.on_roles, f"{rule.code} judges roles but does not declare on_roles"
            if rule.severity > Severity.INFO:
                assert ROLE_GUESSED in rule.also.get(Severity.INFO, ""), rule.also
