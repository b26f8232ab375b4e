"""Volcano Kthena (volcano-sh/kthena, API group `workload.serving.volcano.sh`, version `v1alpha1`): `ModelServing`
and `ModelBooster`. Facts from volcano-sh/kthena@3cc057284c34469fcb0ed22a12dac84b1d120719:

ModelServing (pkg/apis/workload/v1alpha1/model_serving_types.go, servinggroup_types.go): `spec.replicas` ServingGroups
(default 1), each with every role of `spec.template.roles[]`; a role has `name`, `replicas` (default 1), one
`entryTemplate` pod and `workerReplicas` pods of `workerTemplate`. The controller makes, per ServingGroup and per
role replica, the entry pod and `workerReplicas` worker pods (pkg/model-serving-controller/controller/
model_serving_controller.go:2501-2547, CreatePodsForServingGroup/CreatePodsByRole; utils/utils.go:364-372
ExpectedPodNum: (1 + workerReplicas) × role replicas), and gives every container `GROUP_SIZE` = workerReplicas + 1,
`ENTRY_ADDRESS` and `WORKER_INDEX` (utils/utils.go:171-188). Each pod is labelled `modelserving.volcano.sh/role: <role
name>` (utils/utils.go:127-143); that label is the role name's only effect on routing, and only through a ModelServer
whose `workloadSelector.pdGroup.prefillLabels` / `decodeLabels` select it (pkg/kthena-router/datastore/
model_server.go:76-103). A ModelServing alone therefore gives a role name no meaning: the engine's own flags decide its
role, and the name is a name (an info at most). A ModelServer in the same file is read for what it routes (`route`).

ModelBooster (pkg/apis/workload/v1alpha1/model_booster_types.go): a `spec.backend` of `type` vLLM or vLLMDisaggregated
(the CRD's enum; BuildModelServing refuses any other, pkg/model-booster-controller/convert/model_serving.go:58-74) is
turned into a ModelServing from templates/vllm-pd.yaml (vLLMDisaggregated) or templates/vllm.yaml (vLLM):
- each worker's `config` mapping becomes vLLM flags, sorted by key, `--KEY VALUE` with `_` made `-`, an empty string a
  bare flag, a number or bool printed by Go's `%v` (pkg/model-booster-controller/utils/template.go:85-122), after
  `python3 -m vllm.entrypoints.openai.api_server --model <cache path>/<md5 of modelURI>` (convert/model_serving.go:
  362-366, 427-439, 482-513);
- the worker of `type: prefill` runs in the role named prefill and the `decode` one in the role named decode, with the
  worker's `image` and `resources`, `replicas` of that role = the worker's `replicas`, and the ModelServing's
  `replicas` = `backend.replicas` (convert/model_serving.go:141-153, 169-216; templates/vllm-pd.yaml:6,14-15,70-71);
  neither `replicas` has a default (int32 without a kubebuilder default), so one left out is 0;
- the roles have `workerReplicas: 0` (templates/vllm-pd.yaml:66,123): a disaggregated worker's `pods` is not read;
- the controller also writes a ModelServer whose pdGroup sends prefill to pods labelled
  `modelserving.volcano.sh/role: prefill` and decode to `decode` (convert/model_server.go:273-287 getPdGroup): the
  worker's `type` decides which traffic its pods get, a field the system reads;
- the backend's `env` goes to both engine containers (convert/model_serving.go:155-167, 556-603).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlparse

from ..cmdline import Arg, find_command
from ..knowledge.versions import Target
from ..labels import holds
from ..model import Deployment, Host, Setting, Unknown, Worker
from ..shell import ShellReader
from ..source import SourceDocument, Span
from .common import count, dig, env_from_k8s, gpus_from_resources, new_worker, no_role_from_names, scalar_arg
from .gotemplate import PLACEHOLDER
from .kube import _labels, pod_workers

GROUP = "workload.serving.volcano.sh"
KINDS = ("ModelServing", "ModelBooster")
ROLE_LABEL = "modelserving.volcano.sh/role"  # pkg/apis/workload/v1alpha1/labels.go:25
GROUP_LABEL = "modelserving.volcano.sh/group-name"  # labels.go:23
SOURCE = "volcano-sh/kthena@3cc0572"
ENGINE_PROGRAM = ("python3", "-m", "vllm.entrypoints.openai.api_server")  # convert/model_serving.go:365


def read(doc: SourceDocument, dep: Deployment, target: Target) -> bool:
    kind = doc.data.get("kind")
    if kind == "ModelServing":
        read_model_serving(doc, dep, target)
        return True
    return read_model_booster(doc, dep, target)


# --- ModelServing ----------------------------------------------------------------------------------------------------


def read_model_serving(doc: SourceDocument, dep: Deployment, target: Target) -> None:
    data = doc.data
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    name = str(meta.get("name", "ModelServing")) if not _templated(meta.get("name")) else "ModelServing"
    spec = data.get("spec") if isinstance(data.get("spec"), dict) else {}
    group = spec.get("template") if isinstance(spec.get("template"), dict) else {}
    roles = group.get("roles") if isinstance(group.get("roles"), list) else []
    reader = ShellReader(doc.text)
    for ri, role in enumerate(roles):
        if not isinstance(role, dict):
            continue
        rname = str(role.get("name", ri))
        rpath = ("spec", "template", "roles", ri)
        extra = count(role.get("workerReplicas", 0))
        size = 1 + extra if isinstance(extra, int) else 1
        replicas = _total(doc, spec, ("spec",), role, rpath)
        entry = role.get("entryTemplate") if isinstance(role.get("entryTemplate"), dict) else {}
        # the labels the controller gives every pod of the role, under the template's own (utils/utils.go:96-143)
        pod_labels = {ROLE_LABEL: rname, "modelserving.volcano.sh/name": name, GROUP_LABEL: f"{name}-<index>"}
        leaders = pod_workers(doc, dep, f"{name}/{rname}", rpath + ("entryTemplate", "spec"), _without_runtime(entry.get("spec")), None, target,
                              {**pod_labels, "modelserving.volcano.sh/entry": "true", **_labels(entry.get("metadata"))}, [rname], nodes=size,
                              reader=reader)
        followers: list[Worker] = []
        wt = role.get("workerTemplate")
        if isinstance(extra, int) and extra > 0 and isinstance(wt, dict):
            one_engine = any(w.is_engine for w in leaders)
            followers = pod_workers(doc, dep, f"{name}/{rname}/worker", rpath + ("workerTemplate", "spec"), wt.get("spec"), None, target,
                                    {**pod_labels, **_labels(wt.get("metadata"))}, [rname], reader=reader)
            for w in followers:
                if one_engine:  # the entry pod's engine spans the group: the worker pods are its other nodes
                    w.settings["engine_part"] = Setting(True, None, "workerTemplate")
        for w in leaders + followers:
            w.replicas = replicas
            w.labels.setdefault(ROLE_LABEL, rname)


def route(dep: Deployment, docs: list[SourceDocument]) -> None:
    """Roles that a ModelServer of the same file gives Kthena's pods: the router keeps the pods its
    `workloadSelector.matchLabels` selects in its namespace (pkg/kthena-router/controller/modelserver_controller.go:186-191),
    pairs those that carry its `pdGroup.groupKey`, and takes a pod as decode when it has every `decodeLabels` label, else
    as prefill when it has every `prefillLabels` one (pkg/kthena-router/datastore/model_server.go:76-103). An engine whose
    own flags say nothing (vLLM's kv_both) takes that role, over what its role's name suggests; one whose flags decide
    keeps theirs."""
    ns_of = {str(dig(d.data, "metadata", "name")): dig(d.data, "metadata", "namespace") for d in docs
             if isinstance(d.data, dict) and d.data.get("kind") == "ModelServing"}
    for doc in docs:
        data = doc.data
        if not isinstance(data, dict) or data.get("kind") != "ModelServer" or not str(data.get("apiVersion")).startswith("networking.serving.volcano.sh/"):
            continue
        meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        sel = dig(data, "spec", "workloadSelector")
        pd = sel.get("pdGroup") if isinstance(sel, dict) else None
        if not isinstance(pd, dict):
            continue
        match = sel.get("matchLabels") if isinstance(sel.get("matchLabels"), dict) else {}
        ns = meta.get("namespace")
        for w in dep.workers:
            if not w.is_engine or ROLE_LABEL not in w.labels or (w.role not in ("unknown", "aggregated") and w.role_from != "name"):
                continue
            pod_ns = ns_of.get(w.labels.get("modelserving.volcano.sh/name", ""))
            if ns is not None and pod_ns not in (None, ns) or not _has(w.labels, match, empty=True) or str(pd.get("groupKey")) not in w.labels:
                continue
            role = "decode" if _has(w.labels, pd.get("decodeLabels")) else "prefill" if _has(w.labels, pd.get("prefillLabels")) else None
            if role is not None:
                w.set_role(role, f"ModelServer {meta.get('name', '?')} selects its pods with pdGroup.{role}Labels "
                                 f"({SOURCE} pkg/kthena-router/datastore/model_server.go:91-102)", "router")


def _has(labels: dict[str, str], wanted: Any, empty: bool = False) -> bool:
    """Every label of `wanted` on the pod; an empty selector selects every pod, an empty role selector none (the
    router's webhook rejects one: pkg/kthena-router/webhook/validator.go:303-313)."""
    return isinstance(wanted, dict) and (bool(wanted) or empty) and holds(labels, wanted)


def _without_runtime(pod_spec: Any) -> Any:
    """The pod spec without Kthena's runtime sidecar: a container that gives only `args` with the runtime's required
    `--pod` and its `--engine-base-url` (python/kthena/runtime/app.py:290-320; templates/vllm-pd.yaml:24-41 adds it
    beside the engine) runs Kthena's metrics and LoRA proxy, not an engine, whatever its `--model` resembles."""
    if not isinstance(pod_spec, dict) or not isinstance(pod_spec.get("containers"), list):
        return pod_spec
    kept = [None if _is_runtime(c) else c for c in pod_spec["containers"]]  # None keeps the other containers' indices
    return {**pod_spec, "containers": kept} if None in kept else pod_spec


def _is_runtime(c: Any) -> bool:
    if not isinstance(c, dict) or c.get("command") or not isinstance(c.get("args"), list):
        return False
    flags = {str(a).split("=", 1)[0] for a in c["args"]}
    return "--pod" in flags and "--engine-base-url" in flags


def _total(doc: SourceDocument, spec: dict, spath: tuple, role: dict, rpath: tuple) -> Setting:
    """Instances of one role: its replicas in each ServingGroup × the ServingGroups."""
    per_group, groups = count(role.get("replicas")), count(spec.get("replicas"))  # count(None): the default, 1
    if isinstance(per_group, int) and isinstance(groups, int):
        total: int | Unknown = per_group * groups
    else:
        total = Unknown(f"role replicas {role.get('replicas')!r} × ServingGroups {spec.get('replicas')!r}")
    if "replicas" in role:
        return Setting(total, Span(*doc.marks.value(rpath + ("replicas",))), "role replicas × ServingGroups")
    if "replicas" in spec:
        return Setting(total, Span(*doc.marks.value(spath + ("replicas",))), "ServingGroups (role replicas default 1)")
    return Setting(total, None, "default")


# --- ModelBooster ----------------------------------------------------------------------------------------------------


def read_model_booster(doc: SourceDocument, dep: Deployment, target: Target) -> bool:
    """The engines the ModelBooster controller starts for each vLLM or vLLMDisaggregated backend; False when it builds
    none. `spec.backend` (volcano-sh/kthena: one backend, its ModelServing's replicas from `replicas`) or, in the API
    of Kthena's earlier home, `spec.backends[]` (matrixinfer-ai/kthena@1edd673 pkg/apis/workload/v1alpha1/
    model_booster_types.go:42, 98: a ModelServing per backend, its replicas from `minReplicas`, convert/model_serving.go
    BuildModelServing, :183, :279), each worker's `config` turned into flags alike (buildCommands, :322-332)."""
    data = doc.data
    spec = data.get("spec") if isinstance(data.get("spec"), dict) else {}
    if isinstance(spec.get("backend"), dict):
        backends = [(("spec", "backend"), spec["backend"], "replicas")]
    else:
        listed = spec.get("backends") if isinstance(spec.get("backends"), list) else []
        backends = [(("spec", "backends", i), b, "minReplicas") for i, b in enumerate(listed) if isinstance(b, dict)]
    read = False
    for bpath, backend, rkey in backends:
        read = _read_backend(doc, dep, target, backend, bpath, rkey, len(backends) > 1) or read
    return read


def _read_backend(doc: SourceDocument, dep: Deployment, target: Target, backend: dict, bpath: tuple, rkey: str, several: bool) -> bool:
    data = doc.data
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    name = str(meta.get("name", "ModelBooster")) if not _templated(meta.get("name")) else "ModelBooster"
    if several and isinstance(backend.get("name"), str):
        name = f"{name}/{backend['name']}"
    workers = backend.get("workers") if isinstance(backend.get("workers"), list) else []
    btype = backend.get("type")
    notes: list[str] = []
    if _templated(btype):
        # the CRD's enum is vLLM | vLLMDisaggregated and a vLLM backend must have exactly one worker
        # (pkg/model-booster-controller/webhook/model_validator.go:103-125): two or more are a disaggregated backend
        btype = "vLLMDisaggregated" if len(workers) >= 2 else "vLLM" if len(workers) == 1 else None
        if btype is None:
            return False
        notes.append(f"backend type is a template value; with {len(workers)} worker(s) Kthena accepts only {btype}")
    if btype not in ("vLLM", "vLLMDisaggregated"):
        return False  # BuildModelServing: "not support model backend type" (convert/model_serving.go:67-68)
    if rkey not in backend:
        notes.append(f"{'.'.join(map(str, bpath))}.{rkey} is required by the ModelBooster CRD (charts/kthena/charts/workload/crds/"
                     "workload.serving.volcano.sh_modelboosters.yaml:1406-1411) and missing: the API server rejects this object as written")
    reader = ShellReader(doc.text)
    env = env_from_k8s(doc, bpath + ("env",), backend.get("env"))
    model_path = _model_path(backend)
    for wi, spec_w in enumerate(workers):
        if not isinstance(spec_w, dict):
            continue
        wpath = bpath + ("workers", wi)
        wtype = spec_w.get("type", "server")  # kubebuilder default: server
        if btype == "vLLMDisaggregated" and not _templated(wtype) and wtype not in ("prefill", "decode"):
            continue  # the validator admits only prefill and decode workers here (model_validator.go:127-139)
        w = _booster_worker(doc, reader, name, backend, bpath, spec_w, wpath, wtype, env, model_path, target, rkey)
        if w is None:
            continue
        w.notes.extend(notes)
        dep.workers.append(w)
    return True


def _booster_worker(doc: SourceDocument, reader: ShellReader, name: str, backend: dict, bpath: tuple, spec_w: dict, wpath: tuple,
                    wtype: Any, env: dict[str, Arg], model_path: str, target: Target, rkey: str = "replicas") -> Worker | None:
    at = Span(*doc.marks.key(wpath + ("config",))) if "config" in spec_w else Span(*doc.marks.value(wpath))
    words = [Arg(t, at) for t in ENGINE_PROGRAM]
    uri_at = Span(*doc.marks.value(bpath + ("modelURI",))) if "modelURI" in backend else at
    words += [Arg("--model", uri_at), Arg(model_path, uri_at)]
    config = spec_w.get("config") if isinstance(spec_w.get("config"), dict) else {}
    for key in sorted(config, key=str):
        kpath = wpath + ("config", key)
        words.append(Arg(f"--{str(key).replace('_', '-')}", Span(*doc.marks.key(kpath))))
        value = config[key]
        if isinstance(value, str):
            if value != "":
                words.append(scalar_arg(doc, kpath, value, reader))
        else:
            words.append(Arg(_go_value(value), Span(*doc.marks.value(kpath))))
    wrapper, why = _dependency_install(backend, config)
    if wrapper:
        cmd = _wrapped(doc, reader, wrapper, words, env)
    else:
        cmd = find_command(words)
    if cmd is None:
        return None
    typed = wtype if not _templated(wtype) else None
    label = typed or f"worker {wpath[-1]}"
    image = spec_w.get("image") if isinstance(spec_w.get("image"), str) and not _templated(spec_w.get("image")) else None
    host = Host("pod", f"{name}/{label}", f"pod:{doc.path}:{name}/{label}")
    w = new_worker(cmd, path=doc.path, name=f"{name}/{label}", host=host, hints=[], env=env, target=target, image=image,
                   labels={ROLE_LABEL: typed} if typed in ("prefill", "decode") else {})
    if why:
        w.notes.append(why)
    no_role_from_names(w)  # the worker's name carries its type: what decides is below, from the field itself
    if w.is_engine and typed in ("prefill", "decode") and w.role in ("unknown", "aggregated"):
        w.set_role(typed, f"ModelBooster worker type {typed} (Kthena's router sends {typed} traffic to its pods: {SOURCE} "
                          "pkg/model-booster-controller/convert/model_server.go:273-287)", "field")
    w.replicas = _booster_replicas(doc, backend, bpath, spec_w, wpath, rkey)
    w.gpus = gpus_from_resources(doc, wpath + ("resources",), spec_w.get("resources"))
    if typed is None and _templated(wtype):
        w.notes.append("its worker type is a template value: which role's pods it runs in, and so which traffic Kthena sends it, is set at render time")
    pods = count(spec_w.get("pods", 0))
    if typed in ("prefill", "decode") and isinstance(pods, int) and pods > 1:
        w.notes.append(f"pods: {pods} is not read for a vLLMDisaggregated worker: each role runs one pod (templates/vllm-pd.yaml workerReplicas: 0)")
    elif typed == "server" and isinstance(pods, int) and pods > 1:
        w.nodes = pods  # one engine over `pods` pods through Ray (convert/model_serving.go:285-291, 368-371)
    return w


def _dependency_install(backend: dict, config: dict) -> tuple[str, str]:
    """(the `pip install ... && ` that Kthena puts before the engine command, or "", a note): for a
    MooncakeConnector or NixlConnector worker when any worker of the backend asks for `nvidia.com/gpu` and the backend's
    env does not set KTHENA_SKIP_ENGINE_DEPENDENCY_INSTALL true; it then runs `bash -c` over the command's words joined
    by spaces, unquoted (convert/model_serving.go:373-402; env/env.go:37,70-75, Go's strconv.ParseBool)."""
    kv = config.get("kv-transfer-config")
    try:
        connector = json.loads(kv).get("kv_connector") if isinstance(kv, str) else None
    except (ValueError, AttributeError):
        connector = None
    prefix = {"MooncakeConnector": "pip install mooncake-transfer-engine && ",
              "NixlConnector": "PIP_DISABLE_PIP_VERSION_CHECK=1 pip install -U --no-cache-dir nixl && "}.get(str(connector))
    if prefix is None:
        return "", ""
    env = backend.get("env") if isinstance(backend.get("env"), list) else []
    skip = next((e.get("value") for e in env if isinstance(e, dict) and e.get("name") == "KTHENA_SKIP_ENGINE_DEPENDENCY_INSTALL"), None)
    if isinstance(skip, str) and skip in ("1", "t", "T", "TRUE", "true", "True"):
        return "", ""
    workers = backend.get("workers") if isinstance(backend.get("workers"), list) else []
    limits = [dig(w, "resources", "limits", "nvidia.com/gpu") for w in workers if isinstance(w, dict)]
    gpus = [_quantity(v) for v in limits]
    if any(g is not None and g > 0 for g in gpus):
        return prefix, ("Kthena runs it as `bash -c` over its words joined by spaces, unquoted, after `" + prefix.strip()
                        + "` (volcano-sh/kthena@3cc0572 convert/model_serving.go:373-382)")
    if any(_templated(v) for v in limits):
        return "", f"whether Kthena runs it as `bash -c '{prefix.strip()} ...'` (its words unquoted) depends on a GPU count set at render time"
    return "", ""


def _quantity(value: Any) -> float | None:
    """A plain Kubernetes quantity (`"2"`, `2`); None for anything else (a template value)."""
    try:
        return float(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else None
    except ValueError:
        return None


def _wrapped(doc: SourceDocument, reader: ShellReader, prefix: str, words: list[Arg], env: dict[str, Arg]):
    """The engine command as bash reads `PREFIX word word ...`: each word's characters keep their place in the file."""
    starts = doc.line_starts()
    text, offs = prefix, [-1] * len(prefix)
    for i, a in enumerate(words):
        if i:
            text, offs = text + " ", offs + [-1]
        pos = [starts[line - 1] + col - 1 for line, col in a.char_pos] if len(a.char_pos) == len(a.text) else \
            [starts[a.span.line - 1] + a.span.column - 1] + [-1] * (len(a.text) - 1)
        text, offs = text + a.text, offs + pos[: len(a.text)]
    reader.base_env = env
    launches = reader.read(text, offs)
    return launches[0].command if launches else None


def _booster_replicas(doc: SourceDocument, backend: dict, bpath: tuple, spec_w: dict, wpath: tuple, rkey: str = "replicas") -> Setting:
    """The role's replicas (the worker's `replicas`) × the ModelServing's (the backend's `rkey`): both 0 when left out."""
    per, groups = count(spec_w.get("replicas", 0)), count(backend.get(rkey, 0))
    if rkey not in backend:
        return Setting(Unknown(f"the backend's {rkey} is missing (a required field)"), None, f"backend {rkey}")
    if isinstance(per, int) and isinstance(groups, int):
        total: int | Unknown = per * groups
    else:
        total = Unknown(f"worker replicas {spec_w.get('replicas')!r} × backend {rkey} {backend.get(rkey)!r}")
    if "replicas" in spec_w:
        return Setting(total, Span(*doc.marks.value(wpath + ("replicas",))), f"worker replicas × backend {rkey}")
    return Setting(total, Span(*doc.marks.value(wpath)), "worker replicas left out: 0, the field has no default")


def _model_path(backend: dict) -> str:
    """Where the engine reads the model: the cache volume's mount path + `/` + the MD5 of `modelURI`
    (convert/model_serving.go:94, 427-439 GetMountPath, 482-513 GetCachePath)."""
    uri, cache = backend.get("modelURI"), backend.get("cacheURI")
    if not isinstance(uri, str) or _templated(uri):
        return "${_T_MODEL_PATH}"
    mount = ""
    if isinstance(cache, str) and cache and not _templated(cache):
        parsed = urlparse(cache)
        rest = (parsed.netloc + parsed.path).strip("/") if parsed.scheme else ""
        mount = "/" + rest if rest else ""
    elif _templated(cache):
        return "${_T_MODEL_PATH}"
    return mount + "/" + hashlib.md5(uri.encode()).hexdigest()


def _go_value(value: Any) -> str:
    """A JSON value as Go's `fmt.Sprintf("%v")` prints what encoding/json decoded it into (float64, bool, map, slice)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if abs(value) < 10**21 else f"{float(value):e}"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 10**21 else repr(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_value(v)}" for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go_value(v) for v in value) + "]"
    return "<nil>" if value is None else str(value)


def _templated(value: Any) -> bool:
    return isinstance(value, str) and bool(PLACEHOLDER.search(value) or "{{" in value)


__all__ = ["GROUP", "KINDS", "read", "read_model_serving", "read_model_booster"]
