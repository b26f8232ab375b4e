"""Forms people deploy P/D serving with that the held-out corpus showed unread (issue 19, corpus3): each is read
from the fields its own system reads (fixtures in tests/fixtures/readers/forms/, written for these tests)."""

from __future__ import annotations

from pathlib import Path

from disagg.doctor.context import LintOptions
from disagg.doctor.engine import lint_text
from disagg.doctor.registry import default_registry
from disagg.schemas.model import Unknown

HERE = Path(__file__).resolve().parent / "fixtures" / "readers" / "forms"
RULES = [r for r in default_registry() if not r.live]


def lint(name: str):
    path = HERE / name
    return lint_text(str(path), path.read_text(), RULES, LintOptions())


def engines(result) -> dict[str, object]:
    return {w.name: w for w in result.deployment.workers if w.is_engine}


def codes(result, severity: str | None = None) -> set[str]:
    return {f.code for f in result.findings if severity is None or f.severity.label == severity}


def test_modelservice_sections_are_the_roles_and_zero_prefill_replicas_hang():
    r = lint("modelservice-zero-prefill.yaml")
    ws = engines(r)
    p, d = ws["tiny-chat/prefill/engine"], ws["tiny-chat/decode/engine"]
    assert (p.role, d.role) == ("prefill", "decode")  # kv_both in both: the section says which
    assert (p.replicas.value, d.replicas.value) == (0, 2)
    [f] = [f for f in r.findings if f.code == "DG104"]
    assert f.severity.label == "error" and r.source_lines[f.line - 1].strip() == "replicas: 0"


def test_modelservice_base_configmap_not_in_the_run_is_unknown_not_guessed():
    r = lint("modelservice-base-config.yaml")
    ws = engines(r)
    p = ws["small-coder/prefill/vllm"]
    assert p.role == "prefill" and str(p.known("tp")) == "2"
    assert isinstance(p.replicas.value, Unknown) and "team-pd-preset" in p.replicas.value.reason  # not the default 1
    assert isinstance(p.value("opaque_args"), Unknown)  # the ConfigMap's args follow the section's
    assert "DG104" not in codes(r)
    assert not codes(r, "error") and not codes(r, "warning"), [f.message for f in r.findings]
