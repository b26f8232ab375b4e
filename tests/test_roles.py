"""Where each worker's role comes from (`Worker.role_from`): what the system reads, or only a name nearby."""

from __future__ import annotations

import textwrap

from disagg.schemas import knowledge
from disagg.schemas.readers import read_script, read_yaml

KV = """'{"kv_connector":"NixlConnector","kv_role":"kv_both"}'"""


def script(text: str):
    return read_script("run.sh", textwrap.dedent(text), knowledge.new_target())


def manifest(text: str):
    return read_yaml("k8s.yaml", textwrap.dedent(text), knowledge.new_target())


def roles(dep) -> list[tuple[str, str]]:
    return [(w.role, w.role_from) for w in dep.workers if w.is_engine]


def test_engine_flags_and_connector_roles_are_read_a_comment_is_a_name():
    dep = script(f"""
        python -m sglang.launch_server --model-path m --disaggregation-mode prefill --port 30000 &
        DYN_VLLM_DISAGGREGATION_MODE=decode python -m dynamo.vllm --model m &
        vllm serve m --kv-transfer-config '{{"kv_connector":"P2pNcclConnector","kv_role":"kv_consumer"}}' &
        # prefill
        vllm serve m --port 8100 --kv-transfer-config {KV} &
        """)
    assert roles(dep) == [("prefill", "flag"), ("decode", "flag"), ("decode", "connector"), ("prefill", "name")]
    assert [w.role_guessed for w in dep.workers] == [False, False, False, True]


def test_a_proxy_that_names_the_ports_replaces_the_names():
    dep = script(f"""
        vllm serve m --port 8100 --kv-transfer-config {KV} > decode.log &
        vllm serve m --port 8200 --kv-transfer-config {KV} > prefill.log &
        python3 toy_proxy_server.py --prefiller-port 8100 --decoder-port 8200
        """)
    assert roles(dep) == [("prefill", "router"), ("decode", "router")]


def test_the_sglang_pd_router_urls_route_traffic_but_never_override_a_flag():
    dep = script("""
        python -m sglang.launch_server --model-path m --port 30000 &
        python -m sglang.launch_server --model-path m --disaggregation-mode prefill --port 30001 &
        python -m sglang_router.launch_router --pd-disaggregation --prefill http://127.0.0.1:30000 --decode http://127.0.0.1:30001
        """)
    first, second = dep.engines()
    assert (first.role, first.role_from, first.known("routed_as")) == ("prefill", "router", "prefill")
    assert (second.role, second.role_from, second.known("routed_as")) == ("prefill", "flag", "decode")


def test_sglang_mini_lb_takes_every_url_after_one_flag_and_the_router_a_url_and_its_bootstrap_port():
    dep = script("""
        python -m sglang.launch_server --model-path m --port 30000 &
        python -m sglang.launch_server --model-path m --port 30001 &
        python -m sglang.launch_server --model-path m --port 30002 &
        python3 -m sglang.srt.disaggregation.mini_lb --prefill http://127.0.0.1:30000 http://127.0.0.1:30001 --decode http://127.0.0.1:30002
        """)
    assert [w.known("routed_as") for w in dep.engines()] == ["prefill", "prefill", "decode"]
    dep = script("""
        python -m sglang.launch_server --model-path m --port 8998 &
        python -m sglang.launch_server --model-path m --port 30000 &
        python -m sglang.launch_server --model-path m --port 30001 &
        python -m sglang_router.launch_router --pd-disaggregation --prefill http://127.0.0.1:30000 8998 --decode http://127.0.0.1:30001
        """)
    assert [w.known("routed_as") for w in dep.engines()] == [None, "prefill", "decode"]  # 8998 is a bootstrap port


def test_the_llm_d_role_label_is_what_the_scheduler_reads():
    dep = manifest("""
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: decode-like-name}
        spec:
          template:
            metadata: {labels: {llm-d.ai/role: prefill}}
            spec:
              containers:
                - name: vllm
                  image: vllm/vllm-openai:v0.11.2
                  command: [vllm, serve, m]
        """)
    assert roles(dep) == [("prefill", "field")]


def test_dgd_sub_component_type_is_a_field_and_wins_over_a_service_name():
    dep = manifest("""
        apiVersion: nvidia.com/v1alpha1
        kind: DynamoGraphDeployment
        metadata: {name: g}
        spec:
          services:
            VllmDecodeWorker:
              componentType: worker
              subComponentType: prefill
              extraPodSpec:
                mainContainer:
                  command: [python3, -m, dynamo.vllm]
                  args: [--model, m]
            VllmPrefillWorker:
              componentType: worker
              extraPodSpec:
                mainContainer:
                  command: [python3, -m, dynamo.vllm]
                  args: [--model, m]
        """)
    assert roles(dep) == [("prefill", "field"), ("prefill", "name")]


def test_an_unflagged_dynamo_worker_beside_flagged_prefill_is_decode_by_default():
    dep = script("""
        python -m dynamo.vllm --model m &
        python -m dynamo.vllm --model m --disaggregation-mode prefill &
        """)
    assert roles(dep) == [("decode", "default"), ("prefill", "flag")]
    named = script("""
        python -m dynamo.vllm --model m &
        python -m dynamo.vllm --model m > prefill.log &
        """)
    assert roles(named) == [("decode", "name"), ("prefill", "name")]


def test_capacity_fields_feed_the_model_with_their_spans():
    beta = manifest("""
        apiVersion: nvidia.com/v1beta1
        kind: DynamoGraphDeployment
        metadata: {name: g}
        spec:
          components:
            - name: prefill
              type: prefill
              replicas: 3
              multinode: {nodeCount: 2}
              podTemplate:
                spec:
                  containers:
                    - name: main
                      command: [python3, -m, dynamo.vllm]
                      args: [--model, m, --disaggregation-mode, prefill]
        """)
    [w] = beta.workers
    assert (w.replicas.value, w.replicas.span.line, w.nodes) == (3, 9, 2)  # the text starts with an empty line
    kserve = manifest("""
        apiVersion: serving.kserve.io/v1alpha1
        kind: LLMInferenceService
        metadata: {name: q}
        spec:
          model: {uri: "hf://m", name: m}
          parallelism: {tensor: 4, data: 2, dataLocal: 2}
          template:
            containers:
              - name: main
        """)
    [w] = kserve.workers
    assert (w.known("tp"), w.settings["tp"].span.line) == (4, 7)


def test_a_router_url_to_another_address_is_not_this_script_s_server():
    dep = script("""
        python -m sglang.launch_server --model-path m --disaggregation-mode decode --port 8000 &
        python -m sglang_router.launch_router --pd-disaggregation --prefill http://192.168.0.184:8000 8995 --decode http://127.0.0.1:8000
        """)
    [server] = dep.engines()
    assert server.known("routed_as") == "decode", server.settings.get("routed_as")
    bound = script("""
        python -m sglang.launch_server --model-path m --host 10.0.0.5 --port 8000 &
        python -m sglang_router.launch_router --pd-disaggregation --prefill http://10.0.0.5:8000 --decode http://10.0.0.6:8000
        """)
    [server] = bound.engines()
    assert (server.role, server.role_from) == ("prefill", "router")


def test_verbose_output_says_where_each_role_comes_from(cli, tmp_path):
    path = tmp_path / "run.sh"
    path.write_text(f"# prefill\npython -m dynamo.vllm --model m --kv-transfer-config {KV} &\n"
                    f"python -m dynamo.vllm --model m --disaggregation-mode decode --kv-transfer-config {KV} &\n")
    out = cli("doctor", path, "--verbose", "--exit-zero").out
    assert "(prefill: named prefill nearby ('prefill')) with" in out and "(decode: --disaggregation-mode decode)" in out, out


def test_a_role_set_without_saying_how_is_never_taken_for_a_name():
    dep = script("""
        # prefill
        vllm serve m --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_both"}' &
        """)
    [w] = dep.workers
    assert w.role_guessed
    w.role = "prefill"  # a reader that decides from a field of its own and does not call set_role
    assert (w.role_from, w.role_guessed) == ("none", False)


def test_production_stack_router_routes_pods_by_their_model_label_across_the_files_of_its_folder():
    """vllm_router.app in a P/D routing logic with Kubernetes discovery sends prefill to pods labelled model=<one of
    --prefill-model-labels> and decode to <--decode-model-labels> (production-stack a6c01db): in one file the pods get
    those roles; across the files of one folder the two are one pair, by the router, not by resemblance."""
    from pathlib import Path

    from disagg.doctor.context import LintOptions
    from disagg.doctor.engine import lint_paths, lint_text
    from disagg.doctor.registry import default_registry

    folder = Path(__file__).resolve().parent / "fixtures" / "readers" / "pstack-router"
    results = {Path(r.path).name: r for r in lint_paths([str(folder)], [r for r in default_registry() if not r.live], LintOptions())}
    [pair] = results["prefill.yaml"].pairs
    assert "production-stack router in router.yaml" in pair.why
    one = "\n---\n".join((folder / n).read_text() for n in ("prefill.yaml", "decode.yaml", "router.yaml"))
    r = lint_text("all.yaml", one, [r for r in default_registry() if not r.live], LintOptions())
    roles = {w.name: (w.role, w.role_from, w.settings["routed_as"].value) for w in r.deployment.workers if w.is_engine}
    assert roles == {"prefill/vllm": ("prefill", "router", "prefill"), "decode/vllm": ("decode", "router", "decode")}
    # a label the router does not ask for routes nothing; a selector that leaves a pod out routes it nowhere
    assert "routed_as" not in {k for w in lint_text("all.yaml", one.replace("--prefill-model-labels=prefill", "--prefill-model-labels=prefil"),
                                                    [r for r in default_registry() if not r.live], LintOptions()).deployment.workers
                               if w.name == "prefill/vllm" for k in w.settings}
    narrowed = lint_text("all.yaml", one.replace("app in (prefill,decode)", "app in (decode)"), [r for r in default_registry() if not r.live], LintOptions())
    assert [w.name for w in narrowed.deployment.workers if "routed_as" in w.settings] == ["decode/vllm"]
    # the prefill pod's label misspelt, in its own file: the router's file is told that it discovers a pod it sends nothing
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp())
    for n in ("decode.yaml", "router.yaml"):
        shutil.copy(folder / n, tmp / n)
    (tmp / "prefill.yaml").write_text((folder / "prefill.yaml").read_text().replace("        model: prefill\n", "        model: prefil\n"))
    results = {Path(r.path).name: r for r in lint_paths([str(tmp)], [r for r in default_registry() if not r.live], LintOptions())}
    [f] = [f for f in results["router.yaml"].findings if f.code == "DG108"]
    assert "prefill/vllm (model=prefil)" in f.message and f.related[0].path.endswith("prefill.yaml")
    assert not [f for f in results["router.yaml"].findings if f.code == "DG108" and "decode" in f.message.split(" sends ")[1][:6]]

