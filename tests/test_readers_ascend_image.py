"""An image whose entrypoint is `vllm serve "$@"` with the vllm-ascend plugin (volcano-sh's kthena-engine,
images.VLLM_SERVE_IMAGES) runs its container's arguments as vLLM's; and DG211 judges vllm-ascend's MooncakeConnectorV1
named with the plugin's own kv_connector_module_path where the vLLM release takes a registered name first (knowledge
vllm.connector_registry_first). Fixtures in tests/fixtures/readers/ascend-image/, written for these tests."""

from __future__ import annotations

from test_readers import codes, lint


def test_an_args_only_container_on_kthena_engine_runs_vllm_with_the_ascend_plugin():
    r = lint("ascend-image/producer-consumer.yaml")
    assert not r.error and not r.skipped
    ws = {w.role: w for w in r.deployment.workers if w.is_engine}
    p, d = ws["prefill"], ws["decode"]
    assert (p.program, d.program) == ("vllm", "vllm") and p.value("model") == "/data/tiny-moe"
    assert p.value("vllm_plugin") == "vllm-ascend"
    assert p.target.releases("vllm") == frozenset({"0.10.1.1"})  # the image's vLLM, from vllm-ascend v0.10.1rc1's build
    assert len(r.pairs) == 1 and "DG211" not in codes(r)


def test_two_producers_of_the_plugins_own_module_cannot_exchange_kv():
    r = lint("ascend-image/both-producers.yaml")
    assert "DG211" in codes(r, "error")


def test_a_module_path_of_the_users_own_is_not_judged():
    r = lint("ascend-image/foreign-module.yaml")
    assert "DG211" not in codes(r)  # another class may be loaded from it: what it does is not known


def test_a_release_that_reads_the_module_path_first_is_not_judged():
    r = lint("ascend-image/both-producers.yaml", target={"vllm": "0.20.0"})
    assert "DG211" not in codes(r)  # from 0.20.0 the module path decides, and getattr(module, name) is not known here
