"""KServe `LLMInferenceService` and `LLMInferenceServiceConfig` (serving.kserve.io): `template` runs the decode (or
aggregated) vLLM, `prefill.template` the prefill; `worker` blocks are the other pods of a multi-node engine. Both kinds
share one spec type, whose inline WorkloadSpec is the decode workload when `prefill` is set and the only one when not
(opendatahub-io/kserve@3cf0a041 pkg/apis/serving/v1alpha2/llm_inference_service_types.go:64-69,95-111,162-180;
v1alpha1 the same at :100-112,165-172). A config holding one side is half of a service: KServe merges a prefill
config and a decode config into one service only when that service asks for both (config_merge.go:318-342, by the
service's own `prefill`/`worker`), so a config's `template` keeps an unknown role and a prefill config pairs with
nothing the run does not show merged with it.

Besides the engine in the container named `main`, a pod may run llm-d's P/D routing sidecar (`/app/pd-sidecar`) as a
container or a Kubernetes sidecar (an init container with `restartPolicy: Always`); it shares the pod's network with
vLLM, so its `--port` is one of the pod's ports (DG304).

The role comes from the engine's flags; when they do not say, the block does (KServe renders `spec.prefill` into
the prefill workload and `spec.template` into the decode one when a prefill block exists:
kserve/kserve pkg/controller/v1alpha2/llmisvc/config_merge.go at aaac4e2).

KServe builds the `vllm serve` command from its well-known configs; a service that gives no command gets
`spec.model` and what VLLM_ADDITIONAL_ARGS adds. A config (or service) that writes the command is read as a shell
script, its Go `{{ }}` values Unknown (`gotemplate.py`). `parallelism` becomes what the templates pass
(config/llmisvcconfig/config-llm-template.yaml, config-llm-*-worker-data-parallel.yaml at aaac4e2): `tensor` is
`--tensor-parallel-size`; with a `worker` block and data parallelism, `data` is `--data-parallel-size`,
`dataLocal` ranks run per pod, and the group spans data/dataLocal pods (ParallelismSpec.GetSize,
pkg/apis/serving/v1alpha1/llm_inference_service_types_func.go); `pipeline` with a worker block spans that many pods.
"""

from __future__ import annotations

from typing import Any

from .. import pd_sidecar
from ..cmdline import PD_SIDECAR_BINARY, Arg, Command, parse_flags
from ..knowledge.versions import Target
from ..model import Deployment, Host, Setting, Unknown, Worker
from ..shell import ShellReader
from ..source import SourceDocument, Span
from . import gotemplate
from .common import container_launches, env_from_k8s, gpus_from_resources, new_worker, no_role_from_names
from .kube import _replicas


def read(doc: SourceDocument, dep: Deployment, target: Target) -> None:
    data = doc.data
    kind = str(data.get("kind"))
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    name = str(meta.get("name", kind))
    spec = data.get("spec") if isinstance(data.get("spec"), dict) else {}
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()} if isinstance(meta.get("labels"), dict) else {}
    model = spec.get("model") if isinstance(spec.get("model"), dict) else {}
    has_prefill = isinstance(spec.get("prefill"), dict)
    reader = ShellReader(doc.text)
    conds = gotemplate.conditional_spans(doc.text, reader.line_col)
    for role, path, block in (("decode" if has_prefill else "aggregated", ("spec",), spec), ("prefill", ("spec", "prefill"), spec.get("prefill"))):
        if not isinstance(block, dict) or not isinstance(block.get("template"), dict):
            continue
        if kind == "LLMInferenceServiceConfig" and role == "aggregated":
            role = "unknown"  # a config's template serves as decode or aggregated, by the service that uses it
        for w in _block(doc, name, role, path, block, target, labels, reader):
            gotemplate.mark(w, conds)
            no_role_from_names(w)
            if w.is_engine and w.role in ("unknown", "aggregated") and role != "unknown":
                w.set_role(role, "LLMInferenceService " + ("prefill block" if role == "prefill" else "template"), "field")
            if w.is_engine:
                _model(doc, w, model)
                _parallelism(doc, w, path, block)
            w.replicas = _count(doc, path, block)
            dep.workers.append(w)


def _running(tmpl: dict) -> list[tuple[str, int, dict]]:
    """(list key, index, container) of what runs for the pod's life: its containers, and the init containers with
    `restartPolicy: Always` (Kubernetes' sidecar containers, which keep running beside them; any other init container
    has exited before the containers start). All of them share the pod's network."""
    out = []
    for key in ("containers", "initContainers"):
        items = tmpl.get(key) if isinstance(tmpl.get(key), list) else []
        for i, c in enumerate(items):
            if isinstance(c, dict) and (key == "containers" or c.get("restartPolicy") == "Always"):
                out.append((key, i, c))
    return out


def _block(doc: SourceDocument, name: str, role: str, path: tuple, block: dict, target: Target, labels, reader) -> list[Worker]:
    tmpl = block["template"]
    part = "prefill" if path[-1:] == ("prefill",) else "decode" if role == "decode" else "template"
    host = Host("pod", f"{name}/{part}", f"pod:{name}/{part}")
    out = []
    for key, ci, c in _running(tmpl):
        main = key == "containers" and c.get("name", "main") == "main"
        if not main and not _runs_sidecar(c):
            continue  # KServe runs the engine in the container named main; of the others only llm-d's routing sidecar is read
        base = path + ("template", key, ci)
        env = env_from_k8s(doc, base + ("env",), c.get("env"))
        image = c.get("image") if isinstance(c.get("image"), str) and "{{" not in c["image"] else None
        if c.get("command") or c.get("args"):
            launches = container_launches(doc, base, c, env, reader, image, rewrite=gotemplate.rewrite)
            ws = [new_worker(x.command, path=doc.path, name=f"{name}/{part}" + ("" if main else f"/{c.get('name', key)}"), host=host, hints=[],
                             env=x.env, target=target, image=image, labels=labels) for x in launches if main or x.command.program == pd_sidecar.PROGRAM]
        elif not main:
            continue
        else:
            ws = [_default_command(doc, name, part, path, base, c, env, target, labels, host, image)]
        for w in ws:
            if not main:
                continue
            w.gpus = gpus_from_resources(doc, base + ("resources",), c.get("resources"))
            if not (c.get("command") or c.get("args")):
                w.notes.append("KServe adds the rest of the vllm serve command from its templates; only what the file sets is checked")
        out.extend(ws)
    return out


def _runs_sidecar(c: dict) -> bool:
    """The container's own command runs llm-d's routing sidecar (`cmdline.find_command` knows its program); an image
    run with no command is not taken as one by its name."""
    command = c.get("command")
    return isinstance(command, list) and bool(command) and isinstance(command[0], str) and command[0].rsplit("/", 1)[-1] == PD_SIDECAR_BINARY


def _default_command(doc, name, role, path, base, c, env, target, labels, host, image) -> Worker:
    """No command: KServe's template runs `vllm serve` with VLLM_ADDITIONAL_ARGS (kserve docs/samples/llmisvc)."""
    extra = env.get("VLLM_ADDITIONAL_ARGS")
    words: list[Arg] = []
    if extra is not None:
        i = next(j for j, it in enumerate(c.get("env")) if isinstance(it, dict) and it.get("name") == "VLLM_ADDITIONAL_ARGS")
        from ..shell import _State
        from ..shell_lex import Lexer
        from .common import scalar_offsets

        offs = scalar_offsets(doc, base + ("env", i, "value"), extra.text)
        reader = ShellReader(doc.text)
        for cmd in Lexer(gotemplate.rewrite(extra.text), offs).commands():
            for word in cmd.words:
                words.extend(reader.arg(p, 0) for p in reader.expand(word, _State()))
    flags, spans, positional = parse_flags(words)
    cmd = Command("vllm", words, flags, spans, positional, {}, Span(*doc.marks.key(path + ("template",))))
    w = new_worker(cmd, path=doc.path, name=f"{name}/{role}", host=host, hints=[], env=env, target=target, image=image, labels=labels)
    if "port" not in w.settings:
        # the well-known config's command, merged in by container name (a strategic merge of the specs,
        # config_merge.go:861-909; PodSpec's containers merge on `name`), writes the port: --port 8001 behind the
        # sidecar in config-llm-decode-*.yaml, 8000 in the others (opendatahub-io/kserve@3cf0a041
        # config/llmisvcconfig/): not vllm serve's own default, and not in this file
        w.settings["port"] = Setting(Unknown("the port is in the command KServe's well-known config adds"), None, "KServe template")
    return w


def _model(doc: SourceDocument, w: Worker, model: dict) -> None:
    key = "name" if "name" in model else "uri" if "uri" in model else None
    if key is None or "model" in w.settings and w.settings["model"].known:
        return
    value: Any = model[key]
    span = Span(*doc.marks.value(("spec", "model", key)))
    w.settings["model"] = Setting(Unknown(gotemplate.WHY_VALUE) if gotemplate.templated(value) else str(value).removeprefix("hf://"), span, "spec.model")


def _int(doc: SourceDocument, path: tuple, value: Any) -> tuple[Any, Span]:
    from ..engines import as_int

    span = Span(*doc.marks.value(path))
    if gotemplate.templated(value):
        return Unknown(gotemplate.WHY_VALUE), span
    n = as_int(value)
    return (n if n is not None else Unknown(f"{path[-1]}: {value!r}")), span


def _parallelism(doc: SourceDocument, w: Worker, path: tuple, block: dict) -> None:
    par = block.get("parallelism")
    if not isinstance(par, dict):
        return
    ppath = path + ("parallelism",)
    if "tensor" in par:
        value, span = _int(doc, ppath + ("tensor",), par["tensor"])
        w.settings["tp"] = Setting(value, span, "parallelism.tensor")
    multi = isinstance(block.get("worker"), dict)
    data, local = par.get("data"), par.get("dataLocal")
    if multi and (data is not None or local is not None):
        if data is not None:
            value, span = _int(doc, ppath + ("data",), data)
            w.settings["dp"] = Setting(value, span, "parallelism.data")
        d, dl = _int(doc, ppath + ("data",), data or 1)[0], _int(doc, ppath + ("dataLocal",), local or 1)[0]
        if isinstance(d, int) and isinstance(dl, int):
            w.nodes = max(max(d, 1) // max(dl, 1), 1)
    elif multi and par.get("pipeline") is not None:
        value, span = _int(doc, ppath + ("pipeline",), par["pipeline"])
        w.settings["pp"] = Setting(value, span, "parallelism.pipeline")  # one stage per pod of the group (GetSize)
        if isinstance(value, int) and value > 0:
            w.nodes = value


def _count(doc: SourceDocument, path: tuple, block: dict) -> Setting:
    if gotemplate.templated(block.get("replicas")):
        return Setting(Unknown(gotemplate.WHY_VALUE), Span(*doc.marks.value(path + ("replicas",))), "replicas")
    return _replicas(doc, path + ("replicas",) if "replicas" in block else None, block.get("replicas", 1))
