"""Every input format into one `Deployment`: detection and dispatch. Readers never decide what is wrong; rules do."""

from __future__ import annotations

import os
import re
from typing import Any

from ..knowledge.versions import Target
from ..model import Deployment, Host, Setting
from ..source import ConfigError, SourceDocument, Span, load_documents

# Readers are imported where a file needs them: a Dynamo v0 config never loads the shell reader or the manifest ones.

SCRIPT_SUFFIXES = (".sh", ".bash")
from ..formats import FORMATS  # noqa: E402,F401 (re-exported)

# Words that only a serving config holds: a file that fails to parse and has none of them is someone else's YAML.
SERVING_MARKERS = re.compile(
    r"VllmWorker|PrefillWorker|DecodeWorker|remote-prefill|kv[-_]transfer[-_]config|dynamo\.(vllm|sglang|trtllm|frontend)|vllm serve|"
    r"vllm\.entrypoints|sglang\.launch_server|disaggregation[-_]mode|DynamoGraphDeployment|EndpointPickerConfig|context_servers|"
    r"generation_servers|DisaggregatedSet|LLMInferenceService|trtllm-serve|NixlConnector"
)


def is_script(path: str, text: str, fmt: str = "auto") -> bool:
    if fmt != "auto":
        return fmt == "script"
    return path.endswith(SCRIPT_SUFFIXES) or text.startswith("#!")


def read_script(path: str, text: str, target: Target) -> Deployment:
    from ..shell import Launch, ShellReader
    from .common import workers_from_launches

    dep = Deployment(path=path, format="script", lines=text.splitlines())
    launches = ShellReader(text).read(text)

    def host_for(launch: Launch) -> Host:
        if launch.image and launch.network != "host":
            name = launch.container or f"container@{launch.command.start.line}"
            return Host("container", name, f"container:{path}:{name}")
        return Host("process", "script", f"script:{path}")

    dep.workers = workers_from_launches(launches, path=path, host_for=host_for, target=target)
    _link_proxy_roles(dep)
    dynamo_default_roles(dep)
    _link_engine_configs(dep, {})
    share_targets(dep)
    return dep


def read_yaml(path: str, text: str, target: Target, fmt: str = "auto") -> Deployment | None:
    """A deployment from the documents of a YAML file, or None when none of them is a serving config we read."""
    docs = load_documents(path, text)
    dep = Deployment(path=path, format="kubernetes", lines=text.splitlines())
    if len(docs) == 1 and isinstance(docs[0].data, dict) and fmt in ("auto", "dynamo-v0") and "kind" not in docs[0].data and _v0(docs[0].data):
        from . import dynamo_v0

        v0 = dynamo_v0.read(docs[0], target)
        share_targets(v0)
        return v0
    from . import dgd, kube, llmd, trtllm
    engine_configs: dict[str, tuple[SourceDocument, tuple, dict, Any]] = {}
    recognised = False
    for doc in docs:
        data = doc.data
        if not isinstance(data, dict):
            continue
        if fmt in ("auto", "dynamo-v0") and "kind" not in data and _v0(data):
            if len(docs) > 1:
                second = docs[1].marks.value(())
                raise ConfigError(path, second.line, second.column, "a Dynamo service config holds one YAML document; found a second")
            from . import dynamo_v0

            v0 = dynamo_v0.read(doc, target)
            share_targets(v0)
            return v0
        if fmt == "dynamo-v0":
            continue
        if kube_object(data):
            kind = str(data.get("kind"))
            if kind == "DynamoGraphDeployment":
                dgd.read(doc, dep, target)
                recognised = True
            elif kind == "EndpointPickerConfig":
                llmd.read_epp(doc, dep)
                recognised = True
            elif kind == "ConfigMap":
                _configmap(doc, engine_configs)
            elif kube.read_object(doc, dep, target):
                recognised = True
            continue
        if looks_like_compose(data):
            _compose(doc, dep, target)
            recognised = True
        elif trtllm.looks_like_disagg_config(data):
            trtllm.read_disagg_config(doc, dep, target)
            recognised = True
        elif llmd.looks_like_gaie_values(data):
            llmd.read_gaie_values(doc, dep)
            recognised = True
        elif llmd.looks_like_modelservice_values(data):
            llmd.read_modelservice_values(doc, dep, target)
            recognised = True
    _link_engine_configs(dep, engine_configs)
    _link_proxy_roles(dep)
    dynamo_default_roles(dep)
    share_targets(dep)
    if not recognised and not dep.workers:
        return None
    dep.doc = docs[0] if len(docs) == 1 else None
    return dep


def dynamo_default_roles(dep: Deployment) -> None:
    """A `python -m dynamo.vllm` (or sglang, trtllm) worker with no role flag, beside prefill workers of the same
    program, is their decode side: Dynamo's worker serves decode and sends prefills to the prefill workers it
    finds (dynamo/vllm main.py, 0.4 on; from 1.3 it registers as aggregated instead, which DG604 reports)."""
    for w in dep.workers:
        if w.role == "unknown" and w.program.startswith("dynamo.") and w.engine is not None:
            if any(p.role == "prefill" and p.program == w.program for p in dep.workers):
                w.role, w.role_why = "decode", f"{w.program} with no role flag beside prefill workers"


def share_targets(dep: Deployment) -> None:
    """A file targets one release of each system: what one worker's image or flags say holds for all of them,
    unless the file contradicts itself (then each worker keeps its own evidence, and the conflict shows)."""
    for system in ("dynamo", "vllm", "sglang", "trtllm", "llm-d"):
        narrowed = [w for w in dep.workers if system in w.target.candidates and system not in w.target.pinned]
        if not narrowed:
            continue
        common = frozenset.intersection(*(w.target.candidates[system] for w in narrowed))
        if not common:
            continue
        evidence = [e for w in narrowed for e in w.target.evidence if e.system == system]
        for w in dep.workers:
            w.target.merge(system, common, evidence)


def _v0(data: dict) -> bool:
    from ..config import looks_like_dynamo_v0

    return looks_like_dynamo_v0(data)


def kube_object(data: Any) -> bool:
    return isinstance(data, dict) and "kind" in data and "apiVersion" in data


def looks_like_compose(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("services"), dict) and "kind" not in data and any(
        isinstance(s, dict) and ("image" in s or "command" in s or "build" in s) for s in data["services"].values())


def _compose(doc: SourceDocument, dep: Deployment, target: Target) -> None:
    from ..shell import ShellReader
    from .common import container_launches, dig, env_from_k8s, new_worker

    dep.format = "compose"
    reader = ShellReader(doc.text)
    for sname, svc in doc.data["services"].items():
        if not isinstance(svc, dict):
            continue
        base = ("services", sname)
        env = env_from_k8s(doc, base + ("environment",), svc.get("environment"))
        host = Host("node", "compose host", f"host:{doc.path}") if svc.get("network_mode") == "host" else Host("container", str(sname), f"container:{doc.path}:{sname}")
        image = svc.get("image") if isinstance(svc.get("image"), str) else None
        for launch in container_launches(doc, base, svc, env, reader, image, keys=("entrypoint", "command")):
            w = new_worker(launch.command, path=doc.path, name=str(sname), host=host, hints=launch.hints + [str(sname)], env=launch.env,
                           target=target, image=image)
            devices = dig(svc, "deploy", "resources", "reservations", "devices")
            if isinstance(devices, list) and devices and isinstance(devices[0], dict) and "count" in devices[0]:
                try:
                    w.gpus = Setting(int(devices[0]["count"]), None, "deploy.resources.reservations.devices")
                except (TypeError, ValueError):
                    pass
            dep.workers.append(w)


def _configmap(doc: SourceDocument, configs: dict) -> None:
    from . import trtllm

    data = doc.data.get("data")
    if not isinstance(data, dict):
        return
    from .embedded import embedded_yaml

    for key, text in data.items():
        if not isinstance(text, str):
            continue
        found = embedded_yaml(doc, ("data", key), text)
        if found is None or not found[0] or not trtllm.looks_like_engine_config(found[0][0].data):
            continue
        configs[str(key)] = (found[0][0], (), found[0][0].data, found[1])


def _link_engine_configs(dep: Deployment, configs: dict) -> None:
    """A TensorRT-LLM worker's --extra-engine-args file, when the same manifest carries it in a ConfigMap."""
    from . import trtllm

    for w in dep.workers:
        path = w.known("extra_engine_args")
        if not isinstance(path, str):
            continue
        found = configs.get(os.path.basename(path))
        if found is not None:
            inner, base, cfg, to_file = found
            trtllm.apply_engine_config(w, inner, base, cfg, to_file)
        else:
            w.notes.append(f"engine settings are in {path}, which is not in this file")


def _link_proxy_roles(dep: Deployment) -> None:
    """vLLM's toy proxy names its prefill and decode instances by port: use that for instances with no role."""
    for proxy in dep.of_role("proxy"):
        for flag, role in (("prefiller-ports", "prefill"), ("decoder-ports", "decode"), ("prefiller-port", "prefill"), ("decoder-port", "decode")):
            s = proxy.flags.get(flag)
            if s is None or not s.known:
                continue
            ports = set(str(s.value).replace(",", " ").split())
            for w in dep.workers:
                if w.is_engine and w.role in ("unknown", "aggregated") and str(w.known("port", "")) in ports:
                    w.role, w.role_why = role, f"the proxy's --{flag}"


__all__ = ["FORMATS", "SERVING_MARKERS", "is_script", "read_script", "read_yaml", "Span"]
