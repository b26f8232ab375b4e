"""Builders of one prefill/decode pair in every format the doctor reads (test data, written for these tests in the
shapes real repositories use; see tests/test_formats.py).

A spec is a dict: model, block (tokens), tp, dtype, connector (bool), port (side-channel port, or None). Each
builder returns {file name: text}; formats that put prefill and decode in two files return two.
"""

from __future__ import annotations

import json
import shlex

import yaml

BASE = {"model": "Qwen/Qwen3-8B", "block": "16", "tp": "1", "dtype": "bfloat16", "connector": True, "port": None}
KV = json.dumps({"kv_connector": "NixlConnector", "kv_role": "kv_both"})
# vLLM's proxy names which instance prefills and which decodes: with kv_both, nothing else in a script says
PROXY = "python3 toy_proxy_server.py --port 8000 --prefiller-port 8100 --decoder-port 8200"


def vllm_args(spec: dict, model_flag: bool = False) -> list[str]:
    a = (["--model", spec["model"]] if model_flag else []) + ["--block-size", spec["block"], "--tensor-parallel-size", spec["tp"], "--dtype", spec["dtype"]]
    if spec["connector"]:
        a += ["--kv-transfer-config", KV]
    return a


def _q(words: list[str]) -> str:
    return " ".join(shlex.quote(w) for w in words)


def script(p: dict, d: dict) -> dict[str, str]:
    out = ["#!/bin/bash", "set -e"]
    for role, spec, port in (("prefill", p, 8100), ("decode", d, 8200)):
        side = spec["port"] or (5600 if role == "prefill" else 5601)
        out += [f"# start the {role} instance", f"VLLM_NIXL_SIDE_CHANNEL_PORT={side} vllm serve {shlex.quote(spec['model'])} --port {port} {_q(vllm_args(spec))} &"]
    return {"run.sh": "\n".join(out + [PROXY]) + "\n"}


def script_eval(p: dict, d: dict) -> dict[str, str]:
    """Variables with defaults, a command built in a variable and run with eval, the role named far above, in a
    function, a log file per role (the shape of vLLM's nixl_integration/run_accuracy_test.sh)."""
    lines = ["#!/bin/bash", f"MODEL=${{MODEL:-{p['model']}}}", f"DECODE_MODEL=${{DECODE_MODEL:-{d['model']}}}",
             f"PREFILL_BLOCK_SIZE=${{PREFILL_BLOCK_SIZE:-{p['block']}}}", f"DECODE_BLOCK_SIZE=${{DECODE_BLOCK_SIZE:-{d['block']}}}",
             f"KV_CONFIG='{KV}'", "", "start_instances() {", "  # ---- prefill instances ----", "  for i in 0; do",
             "    PORT=810$i", "    echo starting", "    # (many lines of setup could sit here)", "    :", "    :"]
    pside = p["port"] or 5600
    pcmd = f"VLLM_NIXL_SIDE_CHANNEL_PORT={pside} vllm serve $MODEL --port $PORT --block-size ${{PREFILL_BLOCK_SIZE}} --tensor-parallel-size {p['tp']} --dtype {p['dtype']}"
    pcmd += " --kv-transfer-config '$KV_CONFIG'" if p["connector"] else ""
    lines += [f'    BASE_CMD="{pcmd}"', '    eval "$BASE_CMD 2>&1 | tee -a prefill_instance_$i.log &"', "  done"]
    dside = d["port"] or 5601
    dcmd = f"VLLM_NIXL_SIDE_CHANNEL_PORT={dside} vllm serve $DECODE_MODEL --port 8200 --block-size ${{DECODE_BLOCK_SIZE}} --tensor-parallel-size {d['tp']} --dtype {d['dtype']}"
    dcmd += " --kv-transfer-config '$KV_CONFIG'" if d["connector"] else ""
    lines += ["  for i in 0; do", f'    BASE_CMD="{dcmd}"', '    eval "$BASE_CMD 2>&1 | tee -a decode_instance_$i.log &"', "  done", "}", "start_instances", PROXY]
    return {"accuracy.sh": "\n".join(lines) + "\n"}


def docker_run(p: dict, d: dict) -> dict[str, str]:
    out = ["#!/bin/bash"]
    for role, spec, port in (("prefill", p, 8100), ("decode", d, 8200)):
        side = spec["port"] or (5600 if role == "prefill" else 5601)
        out.append(f"docker run -d --gpus all --network host --name qwen-{role} -e VLLM_NIXL_SIDE_CHANNEL_PORT={side} vllm/vllm-openai:v0.11.2 "
                   f"--model {shlex.quote(spec['model'])} --port {port} {_q(vllm_args(spec))}")
    return {"docker.sh": "\n".join(out + [PROXY]) + "\n"}


def _deployment(role: str, spec: dict, args_only: bool = False) -> dict:
    c: dict = {"name": "vllm", "image": "vllm/vllm-openai:v0.11.2",
               "env": [{"name": "VLLM_NIXL_SIDE_CHANNEL_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}
    if args_only:
        c["args"] = vllm_args(spec, model_flag=True)
    else:
        c["command"] = ["vllm", "serve", spec["model"]]
        c["args"] = vllm_args(spec)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"qwen-{role}", "labels": {"app": "qwen"}},
            "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "qwen", "llm-d.ai/role": role}}, "spec": {"containers": [c]}}}}


def kubernetes(p: dict, d: dict) -> dict[str, str]:
    return {"k8s.yaml": yaml.safe_dump_all([_deployment("prefill", p), _deployment("decode", d)], sort_keys=False)}


def kubernetes_args_only(p: dict, d: dict) -> dict[str, str]:
    """Containers that pass only args to the image's entrypoint."""
    return {"k8s-args.yaml": yaml.safe_dump_all([_deployment("prefill", p, True), _deployment("decode", d, True)], sort_keys=False)}


def two_files(p: dict, d: dict) -> dict[str, str]:
    """Prefill and decode in two files of one folder, linked by model and labels."""
    return {"prefill.yaml": yaml.safe_dump(_deployment("prefill", p, True), sort_keys=False),
            "decode.yaml": yaml.safe_dump(_deployment("decode", d, True), sort_keys=False)}


def host_network_pinned(p: dict, d: dict) -> dict[str, str]:
    docs = []
    for role, spec in (("prefill", p), ("decode", d)):
        dep = _deployment(role, spec)
        pod = dep["spec"]["template"]["spec"]
        pod["hostNetwork"] = True
        pod["nodeName"] = "gpu-node-1"
        pod["containers"][0]["env"] = [{"name": "VLLM_NIXL_SIDE_CHANNEL_PORT", "value": str(spec["port"] or (5600 if role == "prefill" else 5601))}]
        docs.append(dep)
    return {"hostnet.yaml": yaml.safe_dump_all(docs, sort_keys=False)}


def compose(p: dict, d: dict) -> dict[str, str]:
    services = {}
    for role, spec, port in (("prefill", p, 8100), ("decode", d, 8200)):
        services[role] = {"image": "vllm/vllm-openai:v0.11.2", "network_mode": "host", "entrypoint": ["vllm", "serve"],
                          "command": [spec["model"], "--port", str(port), *vllm_args(spec)],
                          "environment": {"VLLM_NIXL_SIDE_CHANNEL_PORT": str(spec["port"] or (5600 if role == "prefill" else 5601))}}
    services["proxy"] = {"image": "vllm/vllm-openai:v0.11.2", "network_mode": "host", "entrypoint": ["python3"], "command": PROXY.split()[1:]}
    return {"compose.yaml": yaml.safe_dump({"services": services}, sort_keys=False)}


def _dyn_args(spec: dict, role: str) -> list[str]:
    return ["--model", spec["model"], *vllm_args(spec)[0:6], *(["--kv-transfer-config", KV] if spec["connector"] else []), "--disaggregation-mode", role]


def dgd_v1alpha1(p: dict, d: dict) -> dict[str, str]:
    services: dict = {"Frontend": {"componentType": "frontend", "extraPodSpec": {"mainContainer": {"image": "nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.2.1"}}}}
    for role, spec in (("prefill", p), ("decode", d)):
        services[f"Vllm{role.title()}Worker"] = {"componentType": "worker", "subComponentType": role, "replicas": 1, "resources": {"limits": {"gpu": spec["tp"]}},
                                                 "extraPodSpec": {"mainContainer": {"image": "nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.2.1",
                                                                                    "command": ["python3", "-m", "dynamo.vllm"], "args": _dyn_args(spec, role)}}}
    return {"dgd.yaml": yaml.safe_dump({"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment", "metadata": {"name": "g"},
                                        "spec": {"services": services}}, sort_keys=False)}


def dgd_main_string(p: dict, d: dict) -> dict[str, str]:
    """v1alpha1 `componentType: main` with the whole command in one args string (Dynamo's 0.3-0.4 deploy files)."""
    services: dict = {}
    for role, spec in (("prefill", p), ("decode", d)):
        services[f"Vllm{role.title()}Worker"] = {"componentType": "main", "dynamoNamespace": "g", "resources": {"limits": {"gpu": spec["tp"]}},
                                                 "extraPodSpec": {"mainContainer": {"args": ["python3 -m dynamo.vllm " + _q(_dyn_args(spec, role)) + " 2>&1 | tee /tmp/vllm.log"]}}}
    return {"dgd-main.yaml": yaml.safe_dump({"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment", "metadata": {"name": "g"},
                                             "spec": {"services": services}}, sort_keys=False)}


def dgd_v1beta1(p: dict, d: dict) -> dict[str, str]:
    comps = [{"name": "Frontend", "type": "frontend", "podTemplate": {"spec": {"containers": [{"name": "main", "image": "nvcr.io/nvidia/ai-dynamo/dynamo-frontend:1.2.1",
                                                                                                "command": ["/bin/sh", "-c"], "args": ["exec python3 -m dynamo.frontend --http-port 8000"]}]}}}]
    for role, spec in (("prefill", p), ("decode", d)):
        comps.append({"name": f"Vllm{role.title()}Worker", "type": role, "replicas": 1,
                      "podTemplate": {"spec": {"containers": [{"name": "main", "image": "nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.2.1", "command": ["/bin/sh", "-c"],
                                                               "args": ["exec python3 -m dynamo.vllm " + _q(_dyn_args(spec, role))],
                                                               "resources": {"limits": {"nvidia.com/gpu": spec["tp"]}}}]}}})
    return {"dgd-beta.yaml": yaml.safe_dump({"apiVersion": "nvidia.com/v1beta1", "kind": "DynamoGraphDeployment", "metadata": {"name": "g"},
                                             "spec": {"components": comps}}, sort_keys=False)}


def _v0(p: dict, d: dict) -> dict:
    conf: dict = {"Frontend": {"served_model_name": d["model"], "endpoint": "dynamo.Processor.chat/completions", "port": 8000}}
    for name, spec in (("VllmWorker", d), ("PrefillWorker", p)):
        sec: dict = {"model": spec["model"], "block-size": int(spec["block"]), "tensor-parallel-size": int(spec["tp"]), "dtype": spec["dtype"]}
        if spec["connector"]:
            sec["kv-transfer-config"] = '{"kv_connector":"DynamoNixlConnector"}'
        if name == "VllmWorker":
            sec["remote-prefill"] = True
        sec["ServiceArgs"] = {"workers": 1, "resources": {"gpu": int(spec["tp"])}}
        conf[name] = sec
    return conf


def dynamo_v0(p: dict, d: dict) -> dict[str, str]:
    return {"disagg.yaml": yaml.safe_dump(_v0(p, d), sort_keys=False)}


def dynamo_v0_embedded(p: dict, d: dict) -> dict[str, str]:
    """A Dynamo v0 config passed to a DynamoGraphDeployment in DYN_DEPLOYMENT_CONFIG (examples/llm/deploy, v0.3)."""
    doc = {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment", "metadata": {"name": "g"},
           "spec": {"envs": [{"name": "DYN_DEPLOYMENT_CONFIG", "value": json.dumps(_v0(p, d))}], "services": {}}}
    return {"dgd-v0.yaml": yaml.safe_dump(doc, sort_keys=False, width=100000)}


def leaderworkerset(p: dict, d: dict) -> dict[str, str]:
    docs = []
    for role, spec in (("prefill", p), ("decode", d)):
        c = {"name": "vllm", "image": "vllm/vllm-openai:v0.11.2", "command": ["vllm", "serve", spec["model"]], "args": vllm_args(spec),
             "env": [{"name": "VLLM_NIXL_SIDE_CHANNEL_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}
        docs.append({"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "metadata": {"name": f"qwen-{role}"},
                     "spec": {"replicas": 1, "leaderWorkerTemplate": {"size": 1, "leaderTemplate": {"metadata": {"labels": {"llm-d.ai/role": role}}, "spec": {"containers": [c]}}}}})
    return {"lws.yaml": yaml.safe_dump_all(docs, sort_keys=False)}


def disaggregatedset(p: dict, d: dict) -> dict[str, str]:
    roles = []
    for role, spec in (("prefill", p), ("decode", d)):
        c = {"name": "modelserver", "image": "ghcr.io/llm-d/llm-d-cuda:v0.4.0", "command": ["vllm", "serve"], "args": [spec["model"], *vllm_args(spec)],
             "env": [{"name": "VLLM_NIXL_SIDE_CHANNEL_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}
        roles.append({"name": role, "spec": {"replicas": 1, "leaderWorkerTemplate": {"size": 1, "workerTemplate": {"spec": {"containers": [c]}}}}})
    return {"dset.yaml": yaml.safe_dump({"apiVersion": "disaggregatedset.x-k8s.io/v1", "kind": "DisaggregatedSet", "metadata": {"name": "pd"},
                                         "spec": {"roles": roles}}, sort_keys=False)}


def modelservice_values(p: dict, d: dict) -> dict[str, str]:
    """llm-d modelservice Helm values: one model for both roles (so no model variant), args per role."""
    values: dict = {"modelArtifacts": {"name": p["model"], "uri": f"hf://{p['model']}"}}
    for role, spec in (("prefill", p), ("decode", d)):
        args = vllm_args(spec)
        values[role] = {"create": True, "replicas": 1, "parallelism": {"tensor": int(spec["tp"])},
                        "containers": [{"name": "vllm", "image": "ghcr.io/llm-d/llm-d-cuda:v0.4.0", "modelCommand": "vllmServe",
                                        "args": [a for i, a in enumerate(args) if not (a == "--tensor-parallel-size" or (i and args[i - 1] == "--tensor-parallel-size"))]}]}
    return {"values.yaml": yaml.safe_dump(values, sort_keys=False)}


def llmisvc(p: dict, d: dict) -> dict[str, str]:
    """KServe LLMInferenceService: the model is the service's, so only the flags passed in VLLM_ADDITIONAL_ARGS vary."""
    def tmpl(spec: dict) -> dict:
        return {"containers": [{"name": "main", "env": [{"name": "VLLM_ADDITIONAL_ARGS", "value": _q(vllm_args(spec))}]}]}

    doc = {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "LLMInferenceService", "metadata": {"name": "qwen"},
           "spec": {"model": {"uri": f"hf://{p['model']}", "name": p["model"]}, "template": tmpl(d), "prefill": {"replicas": 1, "template": tmpl(p)}}}
    return {"llmisvc.yaml": yaml.safe_dump(doc, sort_keys=False, width=100000)}


def trtllm(p: dict, d: dict) -> dict[str, str]:
    """TensorRT-LLM's disaggregated config: block size is tokens_per_block, the connector is cache_transceiver_config."""
    def server(spec: dict) -> dict:
        s: dict = {"num_instances": 1, "tensor_parallel_size": int(spec["tp"]), "kv_cache_config": {"tokens_per_block": int(spec["block"])}, "urls": ["localhost:8001"]}
        if spec["connector"]:
            s["cache_transceiver_config"] = {"backend": "UCX"}
        return s

    return {"disagg_config.yaml": yaml.safe_dump({"hostname": "localhost", "port": 8000, "model": p["model"], "backend": "pytorch",
                                                  "context_servers": server(p), "generation_servers": server(d)}, sort_keys=False)}


def pynccl_v0(p: dict, d: dict) -> dict[str, str]:
    """vLLM V0's disaggregated prefill flags (benchmarks/disagg_benchmarks shape)."""
    out = ["#!/bin/bash"]
    for role, spec, port, rank in (("producer", p, 8100, 0), ("consumer", d, 8200, 1)):
        conn = ["--kv-connector", "PyNcclConnector", "--kv-role", f"kv_{role}", "--kv-rank", str(rank), "--kv-parallel-size", "2"] if spec["connector"] else []
        out.append(f"CUDA_VISIBLE_DEVICES={rank} python3 -m vllm.entrypoints.openai.api_server --model {shlex.quote(spec['model'])} --port {port} "
                   f"--block-size {spec['block']} --tensor-parallel-size {spec['tp']} --dtype {spec['dtype']} {_q(conn)} &")
    return {"v0.sh": "\n".join(out) + "\n"}


# format -> (builder, variants it cannot express, variants whose finding is another code here)
def modelservice_cr(p: dict, d: dict) -> dict[str, str]:
    """llm-d's ModelService custom resource: the role is the section (spec.prefill / spec.decode) the operator renders."""
    spec: dict = {"modelArtifacts": {"uri": f"hf://{p['model']}"}, "routing": {"modelName": p["model"]}}
    for role, s in (("prefill", p), ("decode", d)):
        spec[role] = {"replicas": 1, "containers": [{"name": "vllm", "image": "ghcr.io/llm-d/llm-d:v0.2.0", "command": ["vllm", "serve", s["model"]],
                                                     "args": vllm_args(s)}]}
    doc = {"apiVersion": "llm-d.ai/v1alpha1", "kind": "ModelService", "metadata": {"name": "qwen"}, "spec": spec}
    return {"modelservice.yaml": yaml.safe_dump(doc, sort_keys=False, width=100000)}


def ascend_nightly(p: dict, d: dict) -> dict[str, str]:
    """vllm-ascend's nightly multi-node test config: a server command per node, the proxy's node indices the roles."""
    doc = {"test_name": "pd", "model": p["model"], "num_nodes": 2, "npu_per_node": 8,
           "disaggregated_prefill": {"enabled": True, "prefiller_host_index": [0], "decoder_host_index": [1]},
           "deployment": [{"envs": {"SERVER_PORT": 8080}, "server_cmd": f"vllm serve {shlex.quote(s['model'])} --port $SERVER_PORT {_q(vllm_args(s))}"}
                          for s in (p, d)],
           "benchmarks": {"acc": {"case_type": "accuracy"}}}
    return {"pd.yaml": yaml.safe_dump(doc, sort_keys=False, width=100000)}


def srt_slurm(p: dict, d: dict) -> dict[str, str]:
    """An srtctl recipe (NVIDIA/srt-slurm): one model for the job, each role's vLLM flags in its vllm_config section."""
    def section(s: dict) -> dict:
        out: dict = {"block-size": s["block"], "tensor-parallel-size": s["tp"], "dtype": s["dtype"]}
        if s["connector"]:
            out["kv-transfer-config"] = KV
        return out

    doc = {"name": "pd", "model": {"path": p["model"], "container": "vllm/vllm-openai:v0.11.0", "precision": "bf16"},
           "resources": {"gpu_type": "h100", "prefill_nodes": 1, "prefill_workers": 1, "decode_nodes": 1, "decode_workers": 1},
           "backend": {"type": "vllm", "connector": None, "vllm_config": {"prefill": section(p), "decode": section(d)}}}
    return {"recipe.yaml": yaml.safe_dump(doc, sort_keys=False, width=100000)}


FORMATS = {
    "script": (script, set()),
    "script-eval": (script_eval, set()),
    "docker-run": (docker_run, set()),
    "kubernetes": (kubernetes, {"side-channel port"}),
    "kubernetes-args-only": (kubernetes_args_only, {"side-channel port"}),
    "two-files": (two_files, {"side-channel port", "model"}),  # files are linked by model: two models are two deployments
    "hostnetwork-pinned": (host_network_pinned, set()),
    "compose": (compose, set()),
    "dgd-v1alpha1": (dgd_v1alpha1, {"side-channel port"}),
    "dgd-main-string": (dgd_main_string, {"side-channel port"}),
    "dgd-v1beta1": (dgd_v1beta1, {"side-channel port"}),
    "dynamo-v0": (dynamo_v0, {"side-channel port"}),
    "dynamo-v0-embedded": (dynamo_v0_embedded, {"side-channel port"}),
    "leaderworkerset": (leaderworkerset, {"side-channel port"}),
    "disaggregatedset": (disaggregatedset, {"side-channel port"}),
    "modelservice-values": (modelservice_values, {"side-channel port", "model"}),
    "llmisvc": (llmisvc, {"side-channel port", "model"}),
    "trtllm": (trtllm, {"side-channel port", "model", "dtype"}),
    "pynccl-v0": (pynccl_v0, {"side-channel port", "connector presence"}),  # its role comes from the connector flags
    "modelservice-cr": (modelservice_cr, {"side-channel port"}),
    "ascend-nightly": (ascend_nightly, {"side-channel port"}),  # each node is its own machine
    # one model.path for the job; srtctl gives each process its own NIXL side-channel port; without a
    # kv-transfer-config dynamo.vllm's default connector depends on the Dynamo release, which this recipe does not pin
    "srt-slurm": (srt_slurm, {"side-channel port", "model", "connector presence"}),
}
