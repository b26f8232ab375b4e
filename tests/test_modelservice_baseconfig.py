"""llm-d's ModelService base ConfigMaps hold the prefill and decode Deployments as YAML strings with `{{ }}` actions
that the controller renders before it reads them (sigs.k8s.io/yaml Unmarshal, where a key written twice keeps its
last value): the doctor reads them with each action a value set at render time."""

from __future__ import annotations

from pathlib import Path

from disagg.doctor.context import LintOptions
from disagg.doctor.engine import lint_paths
from disagg.doctor.registry import default_registry
from disagg.schemas.source import ConfigError, load_documents

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "readers" / "modelservice-baseconfig.yaml"
RULES = [r for r in default_registry() if not r.live]


def test_a_templated_base_configmap_is_read_with_its_roles_and_template_values_unknown():
    [r] = lint_paths([str(FIXTURE)], RULES, LintOptions())
    assert not r.skipped and not r.error
    ws = sorted((w.role, w.known("block_size"), w.known("kv_connector"), w.flags["port"].known, w.settings["model"].known)
                for w in r.deployment.engines())
    assert ws == [("decode", "16", "NixlConnector", False, False), ("prefill", "32", "NixlConnector", False, False)]
    [f] = [f for f in r.findings if f.code == "DG203"]  # prefill block 32 > decode 16: the pair is checked
    assert r.source_lines[f.line - 1].strip() == '- "32"'


def test_a_key_twice_keeps_the_last_only_where_asked_and_positions_follow_it():
    text = "a:\n  x: 1\nb: 2\na:\n  y: 3\n"
    try:
        load_documents("t.yaml", text)
        raise AssertionError("a duplicate key must stay an error by default")
    except ConfigError as exc:
        assert "duplicate key 'a'" in exc.message
    [doc] = load_documents("t.yaml", text, last_key_wins=True)
    assert doc.data == {"a": {"y": 3}, "b": 2}
    assert doc.marks.value(("a", "y")).line == 5 and doc.marks.key(("a",)).line == 4
