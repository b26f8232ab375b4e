"""Helm values of charts whose templates build the engine command from keys: each value becomes the flag the chart's
template passes for it, positioned at the value (a flag the chart adds by itself sits at the key that makes it).

- vLLM production-stack (`servingEngineSpec.modelSpec[]`): vllm-project/production-stack
  helm/templates/deployment-vllm-multi.yaml and helm/templates/_helpers.tpl at a6c01db (2026-08-05).
- SGLang's LeaderWorkerSet P/D chart (`prefill.config.*`, `decode.config.*`): sgl-project/sglang
  docs/references/multi_node_deployment/lws_pd_helm/sglang-leaderworkerset/templates/_helpers.tpl at 505ee03.
"""

from __future__ import annotations

import json
from typing import Any

from ..cmdline import Arg, Command, parse_flags
from ..knowledge.versions import Target
from ..model import Deployment, Host, Setting, Unknown
from ..source import SourceDocument, Span
from .common import count, env_from_k8s, gpus_from_resources, new_worker, no_role_from_names

# --- vLLM production-stack ---------------------------------------------------------------------------------------

# vllmConfig key -> flag, as deployment-vllm-multi.yaml passes them (a6c01db); booleans are handled below
_PSTACK_VALUES = (
    ("maxModelLen", "--max-model-len"),
    ("dtype", "--dtype"),
    ("tensorParallelSize", "--tensor-parallel-size"),
    ("maxNumSeqs", "--max-num-seqs"),
    ("gpuMemoryUtilization", "--gpu_memory_utilization"),
    ("maxLoras", "--max_loras"),
    ("runner", "--runner"),
    ("convert", "--convert"),
)


def looks_like_production_stack(data: Any) -> bool:
    spec = data.get("servingEngineSpec") if isinstance(data, dict) else None
    return isinstance(spec, dict) and isinstance(spec.get("modelSpec"), list)


class _Words:
    """An argv built from values, each word positioned at the value (or key) it comes from."""

    def __init__(self, doc: SourceDocument):
        self.doc, self.words = doc, []

    def add(self, text: str, path: tuple, at: str = "value") -> None:
        p = self.doc.marks.value(path) if at == "value" else self.doc.marks.key(path)
        self.words.append(Arg(text, Span(*p), ()))


def _templated(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


def read_production_stack(doc: SourceDocument, dep: Deployment, target: Target) -> None:
    dep.format = "helm-values"
    spec = doc.data["servingEngineSpec"]
    if spec.get("enableEngine") is False:
        return
    port = str(spec.get("containerPort", 8000))
    for i, ms in enumerate(spec["modelSpec"]):
        if not isinstance(ms, dict) or ms.get("enabled") is False:
            continue
        base = ("servingEngineSpec", "modelSpec", i)
        if isinstance(ms.get("raySpec"), dict) and ms["raySpec"].get("enabled"):
            continue  # a Ray cluster runs it (deployment-ray.yaml), another template
        w = _Words(doc)
        w.add("vllm", base, "key")
        w.add("serve", base, "key")
        w.add(str(ms.get("modelURL", "")), base + ("modelURL",))
        w.add("--port", base, "key")
        w.add(port, ("servingEngineSpec", "containerPort") if "containerPort" in spec else base, "value" if "containerPort" in spec else "key")
        vc = ms.get("vllmConfig") if isinstance(ms.get("vllmConfig"), dict) else None
        if vc is not None:
            if "enableChunkedPrefill" in vc:
                w.add("--enable-chunked-prefill" if vc["enableChunkedPrefill"] else "--no-enable-chunked-prefill", base + ("vllmConfig", "enableChunkedPrefill"))
            # the template passes --no-enable-prefix-caching unless enablePrefixCaching is true
            w.add("--enable-prefix-caching" if vc.get("enablePrefixCaching") else "--no-enable-prefix-caching",
                  base + ("vllmConfig", "enablePrefixCaching") if "enablePrefixCaching" in vc else base + ("vllmConfig",), "value" if "enablePrefixCaching" in vc else "key")
            for key, flag in _PSTACK_VALUES:
                if key in vc:
                    w.add(flag, base + ("vllmConfig", key), "key")
                    w.add(str(vc[key]), base + ("vllmConfig", key))
            for j, extra in enumerate(vc.get("extraArgs") if isinstance(vc.get("extraArgs"), list) else []):
                if isinstance(extra, (str, int, float)):
                    w.add(str(extra), base + ("vllmConfig", "extraArgs", j))
        lm = ms.get("lmcacheConfig") if isinstance(ms.get("lmcacheConfig"), dict) else None
        if lm is not None and lm.get("enabled"):
            role = str(lm.get("kvRole", "kv_both"))
            v0 = vc is not None and str(vc.get("v0")) == "1" and "enablePD" not in lm
            conn = "LMCacheConnector" if v0 else "LMCacheConnectorV1"
            at = base + ("lmcacheConfig", "kvRole") if "kvRole" in lm else base + ("lmcacheConfig", "enabled")
            w.add("--kv-transfer-config", at, "key")
            w.add(json.dumps({"kv_connector": conn, "kv_role": role}), at)
        flags, spans, positional = parse_flags(w.words[2:])
        cmd = Command("vllm", w.words, flags, spans, positional, {}, Span(*doc.marks.key(base)))
        name = str(ms.get("name", i))
        env = env_from_k8s(doc, base + ("env",), ms.get("env"))
        if lm is not None and lm.get("enabled"):
            env.update(_pstack_lmcache_env(doc, base + ("lmcacheConfig",), lm))
        image = f"{ms.get('repository')}:{ms.get('tag')}" if ms.get("repository") and ms.get("tag") else None
        worker = new_worker(cmd, path=doc.path, name=f"modelSpec/{name}", host=Host("pod", name, f"pod:{doc.path}:{name}"), hints=[], env=env,
                            target=target, image=image, labels={"model": name})
        no_role_from_names(worker)
        keda = isinstance(ms.get("keda"), dict) and ms["keda"].get("enabled")
        if keda:
            floor = ms["keda"].get("minReplicaCount")
            at = base + ("keda", "minReplicaCount") if floor is not None else None
            worker.replicas = Setting(count(floor) if floor is not None else Unknown("KEDA scales it (no minReplicaCount)"),
                                      Span(*doc.marks.value(at)) if at else None, "keda.minReplicaCount")
        elif "replicaCount" in ms:
            worker.replicas = Setting(count(ms["replicaCount"]), Span(*doc.marks.value(base + ("replicaCount",))), "replicaCount")
        worker.gpus = _pstack_gpus(doc, base, ms)
        worker.notes.append("the production-stack chart builds the rest of the pod; only what the values set is checked")
        dep.workers.append(worker)


def _go_true(value: Any) -> bool:
    """Go template truth (`if`, `ternary`): false, 0, "" and empty collections are false; any other string is true."""
    return bool(value) if not isinstance(value, str) else value != ""


def _pstack_lmcache_env(doc: SourceDocument, base: tuple, lm: dict) -> dict[str, Arg]:
    """The LMCache P/D variables the chart sets from lmcacheConfig when enablePD holds (deployment-vllm-multi.yaml,
    after the modelSpec's own env, so they win): LMCACHE_ENABLE_NIXL from enableNixl, LMCACHE_NIXL_ROLE from nixlRole."""
    out: dict[str, Arg] = {}
    if not _go_true(lm.get("enablePD")):
        return out
    if "enableNixl" in lm and not _templated(lm["enableNixl"]):
        out["LMCACHE_ENABLE_NIXL"] = Arg("True" if _go_true(lm["enableNixl"]) else "False", Span(*doc.marks.value(base + ("enableNixl",))), ())
    if "nixlRole" in lm and not _templated(lm["nixlRole"]):
        out["LMCACHE_NIXL_ROLE"] = Arg(str(lm["nixlRole"]), Span(*doc.marks.value(base + ("nixlRole",))), ())
    return out


def _pstack_gpus(doc: SourceDocument, base: tuple, ms: dict) -> Setting:
    if isinstance(ms.get("resources"), dict):
        return gpus_from_resources(doc, base + ("resources",), ms["resources"])
    if "requestGPU" in ms:
        from ..engines import as_int

        n = as_int(ms["requestGPU"])
        return Setting(n if n is not None else Unknown(f"requestGPU {ms['requestGPU']!r}"), Span(*doc.marks.value(base + ("requestGPU",))), "requestGPU")
    return Setting(None, None, "unset")


# --- SGLang LeaderWorkerSet P/D chart ----------------------------------------------------------------------------

# config key -> flag, per role, in the order _helpers.tpl (505ee03) writes the leader command; booleans pass the
# flag alone when true. Keys the template does not read change nothing and are reported as notes.
_SGL_COMMON = (("chunkedPrefillSize", "--chunked-prefill-size"), ("pageSize", "--page-size"), ("dpSize", "--dp-size"),
               ("moeA2aBackend", "--moe-a2a-backend"), ("disaggregationMode", "--disaggregation-mode"),
               ("memFractionStatic", "--mem-fraction-static"), ("epNumRedundantExperts", "--ep-num-redundant-experts"),
               ("moeDenseTpSize", "--moe-dense-tp-size"), ("maxRunningRequests", "--max-running-requests"))
_SGL_FLAGS = {
    "prefill": _SGL_COMMON + (("maxPrefillTokens", "--max-prefill-tokens"), ("epDispatchAlgorithm", "--ep-dispatch-algorithm"),
                              ("eplbAlgorithm", "--eplb-algorithm"), ("tp", "--tp")),
    "decode": _SGL_COMMON + (("cudaGraphMaxBs", "--cuda-graph-max-bs"), ("tpSize", "--tp-size")),
}
_SGL_SWITCHES = {
    "prefill": (("enableDpLmHead", "--enable-dp-lm-head"), ("enableDpAttention", "--enable-dp-attention"), ("disableRadixCache", "--disable-radix-cache")),
    "decode": (("enableDpAttention", "--enable-dp-attention"), ("enableDpLmHead", "--enable-dp-lm-head")),
}


def looks_like_sglang_lws(data: Any) -> bool:
    """The chart's values: `prefill.config` / `decode.config` with a `leaderWorkerSet` block beside them."""
    return isinstance(data, dict) and any(
        isinstance(data.get(r), dict) and isinstance(data[r].get("config"), dict) and isinstance(data[r].get("leaderWorkerSet"), dict)
        for r in ("prefill", "decode"))


def read_sglang_lws(doc: SourceDocument, dep: Deployment, target: Target) -> None:
    dep.format = "helm-values"
    data = doc.data
    glob = data.get("global") if isinstance(data.get("global"), dict) else {}
    model = glob.get("model") if isinstance(glob.get("model"), dict) else {}
    image = glob.get("image") if isinstance(glob.get("image"), dict) else {}
    image_ref = f"{image.get('repository')}:{image.get('tag')}" if image.get("repository") and image.get("tag") else None
    for role in ("prefill", "decode"):
        block = data.get(role)
        if not isinstance(block, dict) or not isinstance(block.get("config"), dict) or block.get("enabled") is False:
            continue
        cfg = block["config"]
        w = _Words(doc)
        for word in ("python3", "-m", "sglang.launch_server"):
            w.add(word, (role,), "key")
        for key, flag in (("port", "--port"), ("host", "--host")):
            if key in cfg:
                w.add(flag, (role, "config", key), "key")
                w.add(str(cfg[key]), (role, "config", key))
        if "path" in model:
            w.add("--model-path", ("global", "model", "path"), "key")
            w.add(str(model["path"]), ("global", "model", "path"))
        if "contextLength" in model:
            w.add("--context-length", ("global", "model", "contextLength"), "key")
            w.add(str(model["contextLength"]), ("global", "model", "contextLength"))
        for key, flag in _SGL_FLAGS[role]:
            if key in cfg:
                w.add(flag, (role, "config", key), "key")
                w.add(str(cfg[key]), (role, "config", key))
        for key, flag in _SGL_SWITCHES[role]:
            if cfg.get(key):
                w.add(flag, (role, "config", key), "key")
        flags, spans, positional = parse_flags(w.words[3:])
        cmd = Command("sglang", w.words, flags, spans, positional, {}, Span(*doc.marks.key((role,))))
        leader = block.get("leader") if isinstance(block.get("leader"), dict) else {}
        env = env_from_k8s(doc, (role, "leader", "env"), leader.get("env"))
        # `hostNetwork` (top level) puts every pod of both roles on its node's network; nodes are not pinned
        host = Host("node", f"unpinned:{role}", f"unpinned-host:{doc.path}:{role}") if data.get("hostNetwork") is True else \
            Host("pod", f"{role}/leader", f"pod:{doc.path}:{role}")
        worker = new_worker(cmd, path=doc.path, name=f"{role}/leader", host=host, hints=[],
                            env=env, target=target, image=image_ref)
        no_role_from_names(worker)
        lws = block.get("leaderWorkerSet") if isinstance(block.get("leaderWorkerSet"), dict) else {}
        if "replicas" in lws:
            worker.replicas = Setting(count(lws["replicas"]), Span(*doc.marks.value((role, "leaderWorkerSet", "replicas"))), "leaderWorkerSet.replicas")
        size = count(lws.get("size", 1))
        worker.nodes = size if isinstance(size, int) and size > 0 else 1
        worker.gpus = gpus_from_resources(doc, (role, "leader", "resources"), leader.get("resources"))
        unread = sorted(str(k) for k in cfg if k not in {k for k, _ in _SGL_FLAGS[role] + _SGL_SWITCHES[role]} | {"port", "host"})
        if unread:
            worker.notes.append(f"the chart's {role} command does not read config.{', config.'.join(unread)}")
        dep.workers.append(worker)
