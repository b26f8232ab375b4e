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
    said = [f for f in r.findings if f.code == "DG405" and "team-pd-preset" in f.message]
    assert said and all(f.severity.label == "info" for f in said)  # what is unknown is said, as an info
    assert not codes(r, "error") and not codes(r, "warning"), [f.message for f in r.findings]


def test_ascend_nightly_internal_dp_nodes_are_hosts_and_the_proxy_indices_are_the_roles():
    r = lint("ascend-nightly-internal.yaml")
    ws = engines(r)
    p, d = ws["node 0"], ws["node 1"]
    assert (p.role, d.role) == ("prefill", "decode")  # kv_both: the harness's prefiller/decoder index says which
    assert p.host.apart(d.host) is True
    assert (p.known("routed_as"), d.known("routed_as")) == ("prefill", "decode")  # as vLLM's toy proxy records it
    assert str(p.known("port")) == "8100"  # $SERVER_PORT from the node's envs (through the YAML merge key)
    [f] = [f for f in r.findings if f.code == "DG203"]
    assert f.severity.label == "error" and "128" in r.source_lines[f.line - 1]


def test_ascend_nightly_external_dp_runs_one_server_per_local_rank_with_the_config_sizes():
    r = lint("ascend-nightly-external.yaml")
    ws = engines(r)
    assert sorted(ws) == ["node 0 rank 0", "node 0 rank 1", "node 1 rank 0"]
    p0, p1, d = ws["node 0 rank 0"], ws["node 0 rank 1"], ws["node 1 rank 0"]
    assert (p0.role, p1.role, d.role) == ("prefill", "prefill", "decode")
    assert (str(p0.known("tp")), str(d.known("tp"))) == ("4", "8")
    tp_line = r.source_lines[p0.settings["tp"].span.line - 1].strip()
    assert tp_line == "tp_size: 4"  # ${TP_SIZE} is positioned where the config sets it
    assert [str(w.flags["data-parallel-rank"].value) for w in (p0, p1)] == ["0", "1"]
    assert str(p1.known("port")) == "9001"  # $SERVER_PORT is ${PORT}: port_start + local rank
    assert p0.host.apart(p1.host) is False and p0.host.apart(d.host) is True
    # vllm-ascend registers MooncakeHybridConnector: no misspelling of MooncakeConnector
    assert {f.severity.label for f in r.findings if f.code == "DG212"} == {"info"}


def test_a_trtllm_engine_config_alone_is_read_with_its_role_unknown():
    r = lint("trtllm-engine-config-context.yaml")
    assert r.error is None and not r.skipped
    [w] = r.deployment.workers
    assert (w.engine, w.role) == ("trtllm", "unknown")  # "context" in the file's name is no role
    assert (str(w.known("tp")), str(w.known("block_size")), w.known("transfer_backend")) == ("2", "32", "UCX")
    assert not codes(r, "error") and not codes(r, "warning"), [f.message for f in r.findings]
    assert any(f.code == "DG405" and "command that passes it" in f.message for f in r.findings)


def test_kv_cache_config_alone_is_not_taken_for_a_trtllm_engine_config():
    r = lint("kv-cache-config-only.yaml")
    assert r.deployment is None or not r.deployment.workers


def test_ascend_nightly_rank_count_beyond_any_node_is_one_server_of_unknown_rank():
    """`dp_size_local` of 10**30 (a fuzz case that made 10**30 servers until memory ran out): one server, rank unknown."""
    text = (HERE / "ascend-nightly-external.yaml").read_text().replace("dp_size_local: 1\n", "dp_size_local: 1000000000000000000000000000000\n", 1)
    assert "1000000000000000000000000000000" in text
    r = lint_text("n.yaml", text, RULES, LintOptions())
    assert len([w for w in r.deployment.workers if w.is_engine]) == 3
