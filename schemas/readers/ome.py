"""OME (ome.io/v1beta1): `ClusterServingRuntime` / `ServingRuntime` and the `InferenceService` that names one.

Field names from sgl-project/ome pkg/apis/ome/v1beta1 (servingruntime_types.go, inference_service.go,
component.go) at 17b77ed. A runtime holds `engineConfig`, `decoderConfig` and `routerConfig`, each a pod spec with
a `runner` container (or `leader.runner` plus `worker.size` pods for one engine over several nodes); an
InferenceService runs the components it lists (`engine`, `decoder`, `router`), each merged over the runtime's, the
service's fields winning (pkg/controller/v1beta1/inferenceservice/utils/merging.go MergeEngineSpec: a component the
service does not list is not run). Replicas: `minReplicas`, default 1 (pkg/constants/constants.go
DefaultMinReplicas).

Roles come from the runner's flags. When the flags do not say, the component does: with both an engine and a
decoder OME deploys "PDDisaggregated" (pkg/webhook/admission/isvc/inference_service_defaults.go, and
servingruntime_webhook.go for runtimes), the engine prefilling and the decoder decoding.

The runtime is usually in another file: `link` resolves a service's `spec.runtime.name` across the files of one run.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..knowledge.versions import Target
from ..model import Deployment, Host, Setting, Worker
from ..shell import ShellReader
from ..source import SourceDocument, Span
from .common import container_launches, count, env_from_k8s, gpus_from_resources, new_worker, no_role_from_names, rdma_requested

_RUNTIME_KEYS = {"engine": "engineConfig", "decoder": "decoderConfig", "router": "routerConfig"}
_PD_ROLE = {"engine": "prefill", "decoder": "decode"}
DEFAULT_MIN_REPLICAS = 1  # pkg/constants/constants.go DefaultMinReplicas (17b77ed)


class Runtime(NamedTuple):
    """A serving runtime of this run, for services in other files that name it."""

    kind: str
    name: str
    doc: SourceDocument
    target: Target


class ServiceRef(NamedTuple):
    """An InferenceService whose runtime is named, not written here."""

    name: str
    runtime: str
    runtime_kind: str | None
    doc: SourceDocument
    target: Target
    disaggregated: bool  # it runs both an engine and a decoder

    @property
    def needs(self) -> str | None:
        """While unresolved, why the file shows disaggregation that could not be checked (Deployment.intent)."""
        if not self.disaggregated:
            return None
        return f"it runs an engine and a decoder whose commands are in runtime {self.runtime}, a file not given"


def read(doc: SourceDocument, dep: Deployment, target: Target) -> None:
    data = doc.data
    kind = str(data.get("kind"))
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    name = str(meta.get("name", kind))
    spec = data.get("spec") if isinstance(data.get("spec"), dict) else {}
    dep.format = "kubernetes"
    if kind in ("ClusterServingRuntime", "ServingRuntime"):
        dep.links.append(Runtime(kind, name, doc, target))
        present = [c for c, key in _RUNTIME_KEYS.items() if isinstance(spec.get(key), dict)]
        for comp in present:
            _component(doc, dep, name, comp, ("spec", _RUNTIME_KEYS[comp]), spec[_RUNTIME_KEYS[comp]], target, present, "runtime")
        return
    # InferenceService: components with a runner of their own are read here; the rest come from the runtime
    runtime = spec.get("runtime") if isinstance(spec.get("runtime"), dict) else {}
    present = [c for c in _RUNTIME_KEYS if isinstance(spec.get(c), dict)]
    for comp in present:
        block = spec[comp]
        if _runner(block):
            _component(doc, dep, name, comp, ("spec", comp), block, target, present, "InferenceService")
    if runtime.get("name"):
        dep.links.append(ServiceRef(name, str(runtime["name"]), runtime.get("kind"), doc, target, "engine" in present and "decoder" in present))


def _runner(block: dict) -> dict | None:
    for path in (("runner",), ("leader", "runner")):
        node: Any = block
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and (node.get("command") or node.get("args")):
            return node
    return None


def _component(doc: SourceDocument, dep: Deployment, name: str, comp: str, base: tuple, block: dict, target: Target, present: list[str],
               where: str) -> list[Worker]:
    runner = _runner(block)
    if runner is None:
        return []
    rpath = base + (("runner",) if isinstance(block.get("runner"), dict) and block["runner"] is runner else ("leader", "runner"))
    env = env_from_k8s(doc, rpath + ("env",), runner.get("env"))
    image = runner.get("image") if isinstance(runner.get("image"), str) else None
    host = Host("node", f"unpinned:{name}/{comp}", f"unpinned-host:{name}/{comp}") if block.get("hostNetwork") else Host("pod", f"{name}/{comp}", f"pod:{name}/{comp}")
    out = []
    for launch in container_launches(doc, rpath, runner, env, ShellReader(doc.text), image):
        w = new_worker(launch.command, path=doc.path, name=f"{name}/{comp}", host=host, hints=[], env=launch.env, target=target, image=image,
                       labels={"ome.io/component": comp, "component": comp})  # pods labelled component=<name> (ome@17b77ed pkg/constants/constants.go:329)
        no_role_from_names(w)
        if w.is_engine and comp in _PD_ROLE and "engine" in present and "decoder" in present and "router" not in present:
            # with no router shown, the side the shipped runtimes' router gives it; a router shown decides by its own
            # selectors (roles.py, SGLang's --prefill-selector / --decode-selector over these pods' labels)
            # the side a component is deployed as, whatever its flags say (DG107 compares the two): OME's own P/D
            # runtimes route prefill to the engine's pods and decode to the decoder's through their router's
            # `--prefill-selector component=engine` / `--decode-selector component=decoder` (sgl-project/ome@17b77ed
            # config/runtimes/srt/deepseek-rdma-pd-rt.yaml:513-514, the same in every shipped *-pd-rt.yaml)
            why = f"OME {comp} of a PDDisaggregated {where} (both engine and decoder)"
            w.settings["launched_as"] = Setting(_PD_ROLE[comp], Span(*doc.marks.key(base)) if base else None, why)
            if w.role in ("unknown", "aggregated"):
                w.set_role(_PD_ROLE[comp], why, "field")
        w.replicas = replicas(doc, base, block)
        w.gpus = gpus_from_resources(doc, rpath + ("resources",), runner.get("resources"))
        w.settings.setdefault("rdma", Setting(rdma_requested(runner.get("resources")), None, "resources"))
        workers = block.get("worker") if isinstance(block.get("worker"), dict) else {}
        size = count(workers.get("size", 0))
        w.nodes = 1 + size if isinstance(size, int) and size > 0 else 1
        out.append(w)
    dep.workers.extend(out)
    return out


def replicas(doc: SourceDocument, base: tuple, block: dict, fallback: dict | None = None) -> Setting:
    """`minReplicas` of the service's component, else of the runtime's, else OME's default."""
    if "minReplicas" in block:
        return Setting(count(block["minReplicas"]), Span(*doc.marks.value(base + ("minReplicas",))), "minReplicas")
    if fallback is not None and "minReplicas" in fallback:
        return Setting(count(fallback["minReplicas"]), None, "the runtime's minReplicas")
    return Setting(DEFAULT_MIN_REPLICAS, None, "OME default minReplicas")


def link(deps: list[Deployment]) -> None:
    """Give each InferenceService the components of the runtime it names, when a file of this run holds it."""
    runtimes: dict[str, list[Runtime]] = {}
    for dep in deps:
        for r in dep.links:
            if isinstance(r, Runtime):
                runtimes.setdefault(r.name, []).append(r)
    for dep in deps:
        for ref in [r for r in dep.links if isinstance(r, ServiceRef)]:
            found = [r for r in runtimes.get(ref.runtime, []) if ref.runtime_kind in (None, r.kind)]
            if not found:
                continue
            rt = found[0]
            _from_runtime(dep, ref, rt)
            dep.links.remove(ref)


def _from_runtime(dep: Deployment, ref: ServiceRef, rt: Runtime) -> None:
    """The service's components that take their runner from the runtime: read in the runtime's file, then placed at
    the service (settings keep their values; their positions are the runtime's, named in `origin`)."""
    spec = ref.doc.data.get("spec") if isinstance(ref.doc.data.get("spec"), dict) else {}
    rspec = rt.doc.data.get("spec") if isinstance(rt.doc.data.get("spec"), dict) else {}
    present = [c for c in _RUNTIME_KEYS if isinstance(spec.get(c), dict)]
    at = Span(*ref.doc.marks.value(("spec", "runtime", "name")))
    for comp in present:
        block = spec[comp]
        rblock = rspec.get(_RUNTIME_KEYS[comp])
        if _runner(block) or not isinstance(rblock, dict):
            continue
        scratch = Deployment(path=rt.doc.path, format="kubernetes")
        ws = _component(rt.doc, scratch, ref.name, comp, ("spec", _RUNTIME_KEYS[comp]), rblock, ref.target, present, "InferenceService")
        for w in ws:
            _relocate(w, ref, rt, at, Span(*ref.doc.marks.key(("spec", comp))))
            w.replicas = replicas(ref.doc, ("spec", comp), block, rblock)
            dep.workers.append(w)


def _relocate(w: Worker, ref: ServiceRef, rt: Runtime, at: Span, decl: Span) -> None:
    where = f"runtime {rt.name} ({rt.doc.path})"

    def moved(s: Setting) -> Setting:
        return Setting(s.value, None, f"{s.origin} in {where}" if s.span is not None else s.origin)

    w.path, w.span = ref.doc.path, decl
    w.settings = {k: moved(s) for k, s in w.settings.items()}
    w.flags = {k: moved(s) for k, s in w.flags.items()}
    w.env = {k: moved(s) for k, s in w.env.items()}
    if w.gpus.span is not None:
        w.gpus = moved(w.gpus)
    w.labels["ome.io/runtime"] = rt.name
    w.notes.append(f"its command is the one of {where}, named at line {at.line}")
