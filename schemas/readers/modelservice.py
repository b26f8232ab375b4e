"""llm-d's `ModelService` custom resource (llm-d.ai/v1alpha1, the llm-d-model-service operator).

What the operator reads (llm-d/llm-d-model-service at 403e983, api/v1alpha1/modelservice_types.go and
internal/controller/child_resources.go):
- `spec.prefill` and `spec.decode` are `PDSpec`s; `mergePDDeployment` renders each into its own Deployment whose pods
  carry `llm-d.ai/role: prefill` / `decode` (getPodLabels; constants.go PREFILL_ROLE, DECODE_ROLE). The role is
  the section.
- a section's `replicas` becomes the Deployment's `spec.replicas`; not set, the Deployment's own default (1) holds
  unless a base config supplies one.
- containers give `command`, `args` (Go templates such as `{{ .HFModelName }}`, rendered by
  `interpolateContainerArgs`), `env`, `resources`. Only `args`: the image's entrypoint runs them.
- `spec.baseConfigMapRef` names a ConfigMap whose `prefillDeployment` / `decodeDeployment` are merged under the
  section (merge_transformers.go: containers by name; the section's args are prepended to the base's, its command
  replaces the base's, env by name). What that ConfigMap adds (flags, the command, replicas) is not in the
  ModelService: Unknown while the ConfigMap is not read with it.
- `parallelism.tensor` is only a value the templates may use; the engine's TP is what its flags say.
"""

from __future__ import annotations

from ..knowledge.versions import Target
from ..model import Deployment, Host, Setting, Unknown
from ..shell import ShellReader
from ..source import SourceDocument, Span
from . import gotemplate
from .common import container_launches, env_from_k8s, gpus_from_resources, new_worker, no_role_from_names
from .kube import _replicas

GROUP = "llm-d.ai"
SOURCE = "llm-d/llm-d-model-service@403e983"


def read(doc: SourceDocument, dep: Deployment, target: Target) -> None:
    data = doc.data
    dep.format = "llm-d"
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    name = str(meta.get("name", "ModelService"))
    spec = data.get("spec") if isinstance(data.get("spec"), dict) else {}
    base_ref = spec.get("baseConfigMapRef")
    base_name = str(base_ref.get("name", "?")) if isinstance(base_ref, dict) else None
    reader = ShellReader(doc.text)
    for role in ("prefill", "decode"):
        block = spec.get(role)
        if not isinstance(block, dict):
            continue
        path = ("spec", role)
        host = Host("pod", f"{name}/{role}", f"pod:{doc.path}:{name}/{role}")
        containers = block.get("containers") if isinstance(block.get("containers"), list) else []
        for ci, c in enumerate(containers):
            if not isinstance(c, dict):
                continue
            base = path + ("containers", ci)
            env = env_from_k8s(doc, base + ("env",), c.get("env"))
            image = c.get("image") if isinstance(c.get("image"), str) and "{{" not in c["image"] else None
            cname = str(c.get("name", ci))
            for launch in container_launches(doc, base, c, env, reader, image, rewrite=gotemplate.rewrite):
                w = new_worker(launch.command, path=doc.path, name=f"{name}/{role}/{cname}", host=host, hints=[], env=launch.env,
                               target=target, image=image, labels={"llm-d.ai/role": role})
                no_role_from_names(w)
                if w.is_engine and w.role in ("unknown", "aggregated"):
                    w.set_role(role, f"ModelService spec.{role} (the operator renders it into the {role} Deployment, "
                                     f"pods labelled llm-d.ai/role: {role}; {SOURCE})", "field")
                w.replicas = _count(doc, path, block, base_name)
                w.gpus = gpus_from_resources(doc, base + ("resources",), c.get("resources"))
                if base_name is not None:
                    _base_unknown(doc, w, base_name)
                dep.workers.append(w)


def _count(doc: SourceDocument, path: tuple, block: dict, base_name: str | None) -> Setting:
    if "replicas" in block:
        if gotemplate.templated(block["replicas"]):
            return Setting(Unknown(gotemplate.WHY_VALUE), Span(*doc.marks.value(path + ("replicas",))), "replicas")
        return _replicas(doc, path + ("replicas",), block["replicas"])
    if base_name is not None:
        return Setting(Unknown(f"not set here; the base ConfigMap {base_name}, not in this run, may set it"), Span(*doc.marks.key(path)),
                       "baseConfigMapRef replicas")
    return _replicas(doc, None, 1)


def _base_unknown(doc: SourceDocument, w, base_name: str) -> None:
    """The base ConfigMap's args are appended after the section's, and may hold any flag, a role flag included."""
    span = Span(*doc.marks.value(("spec", "baseConfigMapRef")))
    if "opaque_args" not in w.settings:
        w.settings["opaque_args"] = Setting(Unknown(f"the base ConfigMap {base_name}, not in this run, adds arguments"), span,
                                            "baseConfigMapRef")
    w.notes.append(f"spec.baseConfigMapRef {base_name} is not in this file: the command, flags and replicas it adds are unknown")
