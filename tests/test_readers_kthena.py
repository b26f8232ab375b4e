"""Volcano Kthena (schemas/readers/kthena.py): a ModelServing's roles become their pods' engines, a ModelBooster's
workers the engines its controller writes (fixtures in tests/fixtures/readers/kthena/, written for these tests)."""

from __future__ import annotations

from test_readers import HERE, RULES, codes, lint

from disagg.doctor.context import LintOptions
from disagg.doctor.engine import lint_text


def _by_role(r):
    return {w.role: w for w in r.deployment.workers if w.is_engine}


def test_modelserving_roles_run_their_entry_pods_replicas_times_serving_groups():
    r = lint("kthena/modelserving-vllm.yaml")
    assert not r.error and not r.skipped
    ws = _by_role(r)
    p, d = ws["prefill"], ws["decode"]
    # the engine's kv_role decides, never the role's name
    assert (p.role_from, d.role_from) == ("connector", "connector")
    assert (p.value("kv_connector"), d.value("kv_connector")) == ("NixlConnector", "NixlConnector")
    # 2 per ServingGroup x 2 ServingGroups; the decode role's replicas default to 1
    assert (p.replicas.value, d.replicas.value) == (4, 2) and (p.gpus.value, d.gpus.value) == (1, 1)
    assert p.labels["modelserving.volcano.sh/role"] == "prefill"
    # the runtime sidecar (args only, Kthena runtime's --pod and --engine-base-url) is no engine
    assert [w.name for w in r.deployment.workers] == ["demo/prefill/engine", "demo/decode/engine"]
    assert codes(r, "error") == {"DG205"} and codes(r, "warning") == set()


def test_an_entry_pod_with_worker_pods_is_one_engine_over_the_group():
    r = lint("kthena/modelserving-multinode.yaml")
    ws = _by_role(r)
    p, d = ws["prefill"], ws["decode"]
    assert (p.nodes, p.gpus.value) == (2, 2)  # GROUP_SIZE = workerReplicas + 1 pods for TP 2 x PP 2: no DG302
    assert d.replicas.value == 0 and d.nodes == 1
    assert "DG302" not in codes(r)
    assert codes(r, "warning") == {"DG208"}  # no VLLM_NIXL_SIDE_CHANNEL_HOST: localhost, in separate pods


def test_modelbooster_worker_type_decides_the_role_and_replicas_have_no_default():
    r = lint("kthena/modelbooster-nixl.yaml")
    assert not r.error and not r.skipped
    ws = _by_role(r)
    p, d = ws["prefill"], ws["decode"]
    assert (p.role_from, d.role_from) == ("field", "field")  # kv_both: the worker type routes it (ModelServer pdGroup)
    assert p.program == "vllm" and p.value("kv_connector") == "NixlConnector"
    assert p.value("tp") in (2, "2") and "enforce-eager" in p.flags
    # the engine reads the model where the downloader writes it: the cache mount + md5(modelURI)
    assert p.value("model") == "/data/cache/" + __import__("hashlib").md5(b"hf://org/model").hexdigest()
    assert (p.replicas.value, d.replicas.value) == (0, 6)  # no worker replicas: 0; 2 x backend replicas 3
    assert p.nodes == 1 and any("pods: 2 is not read" in n for n in p.notes)
    assert codes(r, "error") == {"DG104"}


def test_modelbooster_on_gpus_runs_its_command_through_bash_unquoted():
    r = lint("kthena/modelbooster-mooncake-gpu.yaml")
    ws = _by_role(r)
    assert any("bash -c" in n for n in ws["prefill"].notes)
    # bash removes the JSON's double quotes: vLLM cannot parse --kv-transfer-config
    assert codes(r, "error") == {"DG202"} and all(f.line in (18, 25) for f in r.findings if f.code == "DG202")


def test_modelbooster_helm_template_reads_its_literal_workers():
    r = lint("kthena/modelbooster-template.yaml")
    assert not r.error and not r.skipped
    engines = [w for w in r.deployment.workers if w.is_engine]
    assert len(engines) == 2 and all(w.role_from == "connector" for w in engines)  # the types are chart values
    assert "DG211" in codes(r, "error")


def test_a_template_of_a_kind_no_reader_reads_is_skipped_not_invalid_yaml():
    r = lint("kthena/other-kind-template.yaml")
    assert not r.error and r.skipped == "not a serving config I know: example.org/v1/Widget"


def test_an_image_named_sglang_given_flags_sglang_lacks_is_not_read_as_sglang():
    r = lint("kthena/modelserving-simulator.yaml")
    assert not r.error and r.skipped and "DG205" not in codes(r)


def test_a_modelserver_pdgroup_in_the_file_routes_roles_by_their_pod_labels():
    r = lint("kthena/modelserving-routed.yaml")
    ws = _by_role(r)
    p, d = ws["prefill"], ws["decode"]  # kv_both and roles named first/second: only the ModelServer says which
    assert (p.name, d.name) == ("routed/first/engine", "routed/second/engine")
    assert (p.role_from, d.role_from) == ("router", "router") and "pdGroup.prefillLabels" in p.role_why
    assert "DG205" in codes(r, "error")
    # a ModelServer of another namespace selects none of these pods
    path = HERE / "kthena/modelserving-routed.yaml"
    text = path.read_text().replace("  name: routed-server\n  namespace: ns1", "  name: routed-server\n  namespace: ns2")
    other = lint_text(str(path), text, RULES, LintOptions())
    assert {w.role for w in other.deployment.workers} == {"unknown"} and "DG205" not in codes(other)


def test_modelbooster_backends_list_of_the_earlier_api_is_read_per_backend():
    r = lint("kthena/modelbooster-backends-list.yaml")
    assert not r.error and not r.skipped
    ws = _by_role(r)
    p, d = ws["prefill"], ws["decode"]
    assert (p.role_from, d.role_from) == ("field", "field")
    # worker replicas x the backend's minReplicas (the earlier API's ModelServing replicas)
    assert (p.replicas.value, d.replicas.value) == (2, 6)
    assert r.pairs and codes(r, "warning") | codes(r, "error") <= {"DG208"}
