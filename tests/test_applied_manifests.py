"""A deploy script that starts no server but hands manifests or chart values to kubectl or helm in here-documents is
read as those documents, at the script's own lines (schemas/readers/applied.py; fixtures in
tests/fixtures/readers/applied/, written for these tests)."""

from __future__ import annotations

from pathlib import Path

from disagg.doctor.context import LintOptions
from disagg.doctor.engine import lint_text
from disagg.doctor.registry import default_registry

HERE = Path(__file__).resolve().parent / "fixtures" / "readers" / "applied"
RULES = [r for r in default_registry() if not r.live]


def lint(text: str, name: str = "deploy.sh"):
    return lint_text(name, text, RULES, LintOptions())


def serious(result) -> list:
    return [f for f in result.findings if f.severity.label in ("error", "warning")]


def test_a_manifest_applied_from_standard_input_is_read_at_the_scripts_lines():
    text = (HERE / "kubectl-stdin.sh").read_text()
    r = lint(text)
    [f] = serious(r)
    assert f.code == "DG104" and r.source_lines[f.line - 1].strip() == "replicas: 0"
    assert {w.role for w in r.deployment.workers if w.is_engine} == {"prefill", "decode"}
    # the same here-document piped into kubectl
    piped = text.replace("kubectl apply -n $NS -f - <<EOF", "cat <<EOF | kubectl apply -n $NS -f -")
    [f] = serious(lint(piped))
    assert f.code == "DG104"


def test_chart_values_written_then_given_to_helm_through_a_variable_are_read():
    text = (HERE / "helm-values.sh").read_text()
    r = lint(text)
    assert r.error is None and r.deployment is not None and not serious(r)
    broken = text.replace("    remote-prefill: true\n", "")
    r = lint(broken)
    assert "DG101" in {f.code for f in serious(r)}
    threshold = text.replace("max-local-prefill-length: 10", "max-local-prefill-length: 100000").replace(
        "  VllmWorker:\n", "  VllmWorker:\n    max-model-len: 16384\n")
    r = lint(threshold)
    [f] = [f for f in serious(r) if f.code == "DG102"]
    assert r.source_lines[f.line - 1].strip() == "max-local-prefill-length: 100000"


def test_a_file_written_but_never_applied_and_a_tab_stripped_document_are_not_read():
    text = (HERE / "helm-values.sh").read_text()
    never = text.replace("${HELM_CMD} upgrade --install dynamo ./charts/dynamo -f /tmp/dynamo/values.yaml\n", "cat /tmp/dynamo/values.yaml\n")
    assert lint(never).deployment is None  # what the script hands to nothing runs nowhere
    stdin = (HERE / "kubectl-stdin.sh").read_text().replace("-f - <<EOF", "-f - <<-EOF")
    assert lint(stdin).deployment is None  # <<-EOF: the shell strips leading tabs; not read


def test_a_script_that_starts_servers_itself_is_read_as_its_commands():
    text = (HERE / "kubectl-stdin.sh").read_text() + "vllm serve m --port 8100 &\n"
    r = lint(text)
    assert [w.program for w in r.deployment.workers] == ["vllm"]
