"""A toy proxy pod that names its prefill and decode servers by Kubernetes Service (schemas/kube_services.py): the
Service's selector, namespace and ports say which Deployment's pods it reaches, so the workers of different files
behind the proxy are a pair (fixtures in tests/fixtures/readers/kube-services/, written for these tests)."""

from __future__ import annotations

import shutil
from pathlib import Path

from test_readers import HERE, RULES

from disagg.doctor.context import LintOptions
from disagg.doctor.engine import lint_paths

FOLDER = HERE / "kube-services"


def _copy(tmp_path: Path, **edits: tuple[str, str]) -> Path:
    """The fixture folder, with `file=(old, new)` replacements (`file` without .yaml); `file=None` leaves it out."""
    d = tmp_path / "pd"
    shutil.copytree(FOLDER, d)
    for name, edit in edits.items():
        path = d / f"{name}.yaml"
        if edit is None:
            path.unlink()
            continue
        old, new = edit
        text = path.read_text()
        assert old in text, (name, old)
        path.write_text(text.replace(old, new))
    return d


def _run(folder: Path):
    return lint_paths([str(folder)], RULES, LintOptions())


def _pairs(results):
    return [p for r in results for p in r.pairs]


def _codes(results, severity: str) -> set[str]:
    return {f.code for r in results for f in r.findings if f.severity.label == severity}


def test_the_proxy_pairs_the_deployments_its_services_select(tmp_path):
    results = _run(_copy(tmp_path))
    (pair,) = {(p.decode.name, p.prefill.name, p.why) for p in _pairs(results)}
    assert pair[:2] == ("chat-decode/engine", "chat-prefill/engine")
    assert "sends prefill to Service chat-p-svc:80 and decode to Service chat-d-svc:8000" in pair[2]
    assert not _codes(results, "warning") and not _codes(results, "error")


def test_a_model_mismatch_behind_the_proxy_is_an_error(tmp_path):
    results = _run(_copy(tmp_path, decode=('"vllm", "serve", "acme/chat-13b"', '"vllm", "serve", "acme/chat-7b"')))
    assert "DG205" in _codes(results, "error")


def test_without_the_proxy_the_two_deployments_are_not_paired(tmp_path):
    results = _run(_copy(tmp_path, proxy=None, decode=('"vllm", "serve", "acme/chat-13b"', '"vllm", "serve", "acme/chat-7b"')))
    assert not _pairs(results) and "DG205" not in _codes(results, "error")


def test_a_selector_that_selects_no_pod_of_the_run_pairs_nothing(tmp_path):
    assert not _pairs(_run(_copy(tmp_path, decode=("    app: chat-d\n  ports:", "    app: chat-dx\n  ports:"))))


def test_the_service_port_must_be_the_one_the_proxy_names_and_reach_the_engines_port(tmp_path):
    assert not _pairs(_run(_copy(tmp_path, proxy=("--prefiller-ports 80", "--prefiller-ports 81"))))
    # the named targetPort is the prefill container's 9100; an engine on another port is not behind it
    assert not _pairs(_run(_copy(tmp_path / "b", prefill=('"--port", "9100"', '"--port", "9200"'))))


def test_a_short_name_reaches_only_the_proxys_own_namespace(tmp_path):
    moved = ("  name: chat-d-svc\n", "  name: chat-d-svc\n  namespace: serving\n")
    assert not _pairs(_run(_copy(tmp_path, decode=moved)))  # the Service is in `serving`, its pods in the default
    both = _copy(tmp_path / "b", decode=moved, proxy=("--decoder-hosts chat-d-svc", "--decoder-hosts chat-d-svc.serving.svc.cluster.local"))
    text = (both / "decode.yaml").read_text().replace("  name: chat-decode\n", "  name: chat-decode\n  namespace: serving\n")
    (both / "decode.yaml").write_text(text)
    assert len(_pairs(_run(both))) == 2  # one pair, reported at both ends


def test_a_host_network_proxy_does_not_look_up_service_names(tmp_path):
    host_net = ("    spec:\n      containers:\n      - name: proxy", "    spec:\n      hostNetwork: true\n      containers:\n      - name: proxy")
    assert not _pairs(_run(_copy(tmp_path, proxy=host_net)))
    with_dns = ("    spec:\n      containers:\n      - name: proxy",
                "    spec:\n      hostNetwork: true\n      dnsPolicy: ClusterFirstWithHostNet\n      containers:\n      - name: proxy")
    assert _pairs(_run(_copy(tmp_path / "b", proxy=with_dns)))
