"""RoleBasedGroup (sgl-project/rbg, `workloads.x-k8s.io/v1alpha1` and `v1alpha2`): one object, one pod template per
role, each role its own set of pods.

Field names from sgl-project/rbg@993491fb (v0.8.0-alpha.5) api/workloads/v1alpha1/rolebasedgroup_types.go and
v1alpha2/rolebasedgroup_types.go:
- v1alpha1 `RoleSpec`: `name`, `replicas` (default 1, minimum 0), an inline `template` or a `templateRef: {name}` to
  `spec.roleTemplates[]` with a strategic-merge `templatePatch`, and `leaderWorkerSet: {size, ...}` for a role whose
  replica spans several pods;
- v1alpha2 `RoleSpec`: `name`, `replicas`, and one pattern: `standalonePattern` (one pod per replica) or
  `leaderWorkerPattern: {size}` (`size` pods per replica), each with an inline `template` or `templateRef: {name,
  patch}`.
What a pod runs decides its role (the engine's flags), as everywhere: RBG gives role names no meaning of its own.
A patch that sets a container's `command` or `args` replaces them (strategic merge: containers merge by name, those
lists are replaced); its `env` merges by name. Patches of anything else are not read.
"""

from __future__ import annotations

from typing import Any

from .. import engines
from ..knowledge.versions import Target
from ..model import Deployment, Setting
from ..source import SourceDocument
from .common import count, env_from_k8s
from .kube import _labels, _replicas, pod_workers


def read(doc: SourceDocument, dep: Deployment, target: Target) -> None:
    data = doc.data
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    name = str(meta.get("name", "RoleBasedGroup"))
    spec = data.get("spec") if isinstance(data.get("spec"), dict) else {}
    listed = spec.get("roleTemplates") if isinstance(spec.get("roleTemplates"), list) else []
    templates = {str(t.get("name")): i for i, t in enumerate(listed) if isinstance(t, dict) and isinstance(t.get("template"), dict)}
    for ri, role in enumerate(spec.get("roles") if isinstance(spec.get("roles"), list) else []):
        if not isinstance(role, dict):
            continue
        rname = str(role.get("name", ri))
        rpath = ("spec", "roles", ri)
        source, spath, size = _pattern(role, rpath)
        if source is None:
            continue
        tmpl, tpath, patch, ppath = _template(spec, source, spath, templates)
        if tmpl is None:
            continue
        labels = {**_labels(meta), **_labels(role), **_labels(tmpl.get("metadata"))}
        workers = pod_workers(doc, dep, f"{name}/{rname}", tpath + ("spec",), tmpl.get("spec"), role.get("replicas", 1), target, labels, [rname], nodes=size)
        workers += _patched(doc, dep, f"{name}/{rname}", tmpl, tpath, patch, ppath, role.get("replicas", 1), target, labels, rname, size)
        for w in workers:
            w.replicas = _replicas(doc, rpath + ("replicas",) if "replicas" in role else None, role.get("replicas", 1))


def _pattern(role: dict, rpath: tuple) -> tuple[dict | None, tuple, int]:
    """(the mapping that holds `template`/`templateRef`, its path, pods per replica)."""
    for key in ("standalonePattern", "leaderWorkerPattern"):  # v1alpha2
        block = role.get(key)
        if isinstance(block, dict):
            size = count(block.get("size", 1)) if key == "leaderWorkerPattern" else 1
            return block, rpath + (key,), size if isinstance(size, int) and size > 0 else 1
    lws = role.get("leaderWorkerSet")  # v1alpha1
    size = count(lws.get("size", 1)) if isinstance(lws, dict) else 1
    return role, rpath, size if isinstance(size, int) and size > 0 else 1


def _template(spec: dict, source: dict, spath: tuple, templates: dict[str, int]):
    """(pod template, its path, patch, patch path) of an inline template or a templateRef."""
    if isinstance(source.get("template"), dict):
        return source["template"], spath + ("template",), None, None
    ref = source.get("templateRef")
    if not isinstance(ref, dict) or str(ref.get("name")) not in templates:
        return None, (), None, None
    i = templates[str(ref["name"])]
    tpath = ("spec", "roleTemplates", i, "template")
    if isinstance(ref.get("patch"), dict):  # v1alpha2
        return spec["roleTemplates"][i]["template"], tpath, ref["patch"], spath + ("templateRef", "patch")
    if isinstance(source.get("templatePatch"), dict):  # v1alpha1
        return spec["roleTemplates"][i]["template"], tpath, source["templatePatch"], spath + ("templatePatch",)
    return spec["roleTemplates"][i]["template"], tpath, None, None


def _patched(doc, dep: Deployment, name: str, tmpl: dict, tpath: tuple, patch: Any, ppath: tuple | None, replicas, target: Target,
             labels: dict, rname: str, size: int) -> list:
    """Containers whose command or args the patch replaces are read from the patch (with the template's image and
    env under the patch's env), in place of the ones read from the template."""
    pspec = patch.get("spec") if isinstance(patch, dict) else None
    pcontainers = pspec.get("containers") if isinstance(pspec, dict) else None
    tspec = tmpl.get("spec") if isinstance(tmpl.get("spec"), dict) else {}
    tcontainers = tspec.get("containers") if isinstance(tspec.get("containers"), list) else []
    if not isinstance(pcontainers, list) or ppath is None:
        return []
    out = []
    for pi, pc in enumerate(pcontainers):
        if not isinstance(pc, dict):
            continue
        ti = next((i for i, c in enumerate(tcontainers) if isinstance(c, dict) and c.get("name") == pc.get("name")), None)
        base = tcontainers[ti] if ti is not None else {}
        tenv = env_from_k8s(doc, tpath + ("spec", "containers", ti, "env"), base.get("env")) if ti is not None else {}
        if "command" not in pc and "args" not in pc:
            if "env" in pc and ti is not None:  # env merged into the template's workers of this container
                penv = env_from_k8s(doc, ppath + ("spec", "containers", pi, "env"), pc.get("env"))
                for w in dep.workers:
                    if w.name == f"{name}/{pc.get('name', ti)}":
                        engines.apply_env(w, {k: Setting(a.text, a.span, f"env {k}") for k, a in penv.items()})
            continue
        if ti is not None:  # the template's reading of this container is replaced
            dep.workers[:] = [w for w in dep.workers if w.name != f"{name}/{base.get('name', ti)}"]
        here = ppath + ("spec", "containers", pi)
        there = tpath + ("spec", "containers", ti) if ti is not None else here
        merged = {**base, **{k: v for k, v in pc.items() if k != "env"}, "env": pc.get("env")}
        key_base = {k: (here if k in pc else there) for k in ("command", "args", "resources")} | {"env": here}
        ws = pod_workers(doc, dep, name, tpath + ("spec",) if ti is not None else ppath + ("spec",),
                         {**tspec, "containers": [None] * (ti if ti is not None else pi) + [merged]}, replicas, target, labels, [rname], nodes=size,
                         key_bases={ti if ti is not None else pi: key_base})
        for w in ws:
            for k, a in tenv.items():  # the template's env under the patch's (strategic merge by name)
                if k not in w.env:
                    engines.apply_env(w, {k: Setting(a.text, a.span, f"env {k}")})
            w.notes.append("command and args merged from the role's template and its patch")
        out += ws
    return out
