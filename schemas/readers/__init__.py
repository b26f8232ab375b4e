"""Every input format into one `Deployment`: detection and dispatch. Readers never decide what is wrong; rules do."""

from __future__ import annotations

import re
from typing import Any

from ..formats import FORMATS, SCRIPT_SUFFIXES, kube_object  # noqa: F401 (FORMATS re-exported)
from ..knowledge.versions import Target
from ..model import Deployment, Host, Issue
from ..source import ConfigError, SourceDocument, Span, load_documents

# Readers are imported where a file needs them: a Dynamo v0 config never loads the shell reader or the manifest ones.

# Words that only a serving config holds: a file that fails to parse and has none of them is someone else's YAML.
SERVING_MARKERS = re.compile(
    r"VllmWorker|PrefillWorker|DecodeWorker|remote-prefill|kv[-_]transfer[-_]config|dynamo\.(vllm|sglang|trtllm|frontend)|vllm serve|"
    r"vllm\.entrypoints|sglang\.launch_server|disaggregation[-_]mode|DynamoGraphDeployment|EndpointPickerConfig|context_servers|"
    r"generation_servers|DisaggregatedSet|LLMInferenceService|trtllm-serve|NixlConnector|StormService|ServingRuntime|servingEngineSpec|"
    r"disaggregationMode"
)


def is_script(path: str, text: str, fmt: str = "auto") -> bool:
    if fmt != "auto":
        return fmt == "script"
    from ..formats import is_justfile

    return path.endswith(SCRIPT_SUFFIXES) or text.startswith("#!") or is_justfile(path)


def read_script(path: str, text: str, target: Target) -> Deployment:
    from ..engines import unresolved
    from ..formats import is_justfile
    from ..shell import Launch, ShellReader
    from .common import workers_from_launches

    lines = text.splitlines()
    if is_justfile(path):  # read as the shell script that runs its recipes, line for line (readers/justfile.py)
        from .justfile import to_shell

        text = to_shell(text)
    dep = Deployment(path=path, format="justfile" if is_justfile(path) else "script", lines=lines)
    from .heredoc import without_printed_text
    from .wrappers import passthrough_wrappers

    run = without_printed_text(text)  # what the shell runs: a usage text that `cat <<EOF` prints is not
    reader = ShellReader(run, passthrough=passthrough_wrappers(path, text))
    from .heredoc import printed_bodies

    reader.printed = printed_bodies(text)  # what `cat <<EOF` prints, for `$(f)` of a function that prints a config
    launches = reader.read(run)
    if not launches and (manifests := _applied_manifests(path, text, lines, target)) is not None:
        return manifests
    if not launches:
        # what the scripts it runs start is in them: said when nothing here serves (doctor/files.py words it)
        import bisect

        for name, offset in reader.scripts_run:
            line = bisect.bisect_right(reader.starts, offset)
            col = offset - reader.starts[line - 1] + 1
            dep.issues.append(Issue("runs_script", Span(line, col, line, col + 1), name))
        from .heredoc import written_scripts

        for name, line, body in written_scripts(text):  # scripts it writes that start a server, run by whatever runs them
            if ShellReader(body).read(body):
                dep.issues.append(Issue("writes_serving_script", Span(line, 1, line, 2), name))

    def host_for(launch: Launch) -> Host:
        if launch.remote is not None:  # `ssh HOST CMD`: another machine; one whose name is set at run time shares with none
            if unresolved(launch.remote):
                return Host("unknown", launch.remote, f"ssh:{path}:{launch.command.start.line}:{launch.command.start.column}")
            return Host("node", launch.remote, f"ssh:{path}:{launch.remote}", node=launch.remote)
        if launch.command.scheduler is not None:  # srun / mpirun: Slurm or MPI places it, on a node the file does not name
            at = launch.command.start
            return Host("unknown", launch.command.scheduler, f"{launch.command.scheduler}:{path}:{at.line}:{at.column}")
        if launch.network and launch.network.startswith("container:"):
            # `docker exec X` into a container this script did not start: its network is X's, which the file does not say
            return Host("unknown", launch.container or launch.network, f"{launch.network}:{path}")
        if launch.image and launch.network != "host":
            name = launch.container or f"container@{launch.command.start.line}"
            return Host("container", name, f"container:{path}:{name}")
        return Host("process", "script", f"script:{path}")

    dep.workers = workers_from_launches(launches, path=path, host_for=host_for, target=target)
    from .crlf import broken_continuations

    if not is_justfile(path):  # `just` runs recipe lines itself
        dep.issues.extend(broken_continuations(run, (launch.command for launch in launches)))
    dynamo_default_roles(dep)
    from .heredoc import written_files

    written = written_files(path, text)
    from .engine_configs import link_disagg_configs, link_engine_configs, sglang_config_refs

    link_engine_configs(dep, written, engine="trtllm")
    sglang_config_refs(dep)
    link_disagg_configs(dep, written)
    dynamo_default_roles(dep)  # again: the router URLs of a written disaggregated config name the servers
    share_targets(dep)
    return dep


def _applied_manifests(path: str, text: str, lines: list[str], target: Target) -> Deployment | None:
    """What a script that starts no server hands to kubectl or helm in here-documents, read as that YAML at the
    script's positions (readers/applied.py); None when it hands none we read, or one that is not YAML."""
    from .applied import applied_text

    yaml_text = applied_text(text)
    if yaml_text is None:
        return None
    try:
        dep = read_yaml(path, yaml_text, target)
    except ConfigError:
        return None  # not what kubectl would parse either, or YAML only once the shell has expanded it
    if dep is None or not (dep.workers or dep.parts):
        return None
    for d in (dep, *dep.parts):
        d.lines = lines
    return dep


def read_yaml(path: str, text: str, target: Target, fmt: str = "auto", templated: bool = False) -> Deployment | None:
    """A deployment from the documents of a YAML file, or None when none of them is a serving config we read.

    Each document is recognised by what it declares: a Kubernetes object by its `apiVersion` and `kind` (a kind we
    do not read is skipped, never read as something else), a Dynamo v0 config by top-level keys that are service
    sections of a Dynamo v0 release, compose by `services:`, chart values by the keys their chart reads.
    `templated`: the text is a template (readers/jinja.py), read for what is literal even where it parses as written."""
    template = False
    twice: list[Issue] = []
    try:
        if templated:
            from . import helm

            forced = helm.template_documents(path, text)
            if forced is not None:
                template = True
                docs = forced
            else:
                docs = load_documents(path, text)
        else:
            docs = load_documents(path, text)
    except ConfigError as exc:
        from . import helm
        from . import twice as written_twice

        docs = helm.template_documents(path, text)  # a Helm chart template: its literal parts
        template = docs is not None
        if docs is None:
            docs, twice = written_twice.read(path, text, exc)  # a key written twice: read as its loader reads it, the last one wins
            if docs is None:
                raise
    forced_v0 = fmt == "dynamo-v0"
    for i, doc in enumerate(docs):
        data = doc.data
        if not isinstance(data, dict) or not (_v0(data) or (forced_v0 and not kube_object(data))):
            continue
        if len(docs) > 1:
            other = docs[1 if i == 0 else 0].marks.value(())
            raise ConfigError(path, other.line, other.column, "a Dynamo service config holds one YAML document; found a second")
        from . import dynamo_v0

        v0 = dynamo_v0.read(doc, target)
        v0.issues.extend(twice)
        share_targets(v0)
        return v0
    if forced_v0:
        return None
    dep = Deployment(path=path, format="kubernetes", lines=text.splitlines())
    dep.issues.extend(twice)
    engine_configs: dict[str, tuple[SourceDocument, tuple, dict, Any]] = {}
    recognised = False
    from . import autoscale, embedded_v0

    owners: dict[tuple[str, str], list] = {}
    scalers: list[SourceDocument] = []
    in_configmaps: list[list[SourceDocument]] = []  # the Dynamo v0 configs in each ConfigMap's data
    in_values: list[SourceDocument] = []  # those in block strings of values
    for doc in docs:
        data = doc.data
        if not isinstance(data, dict):
            continue
        if kube_object(data) and autoscale.is_scaler(data):
            scalers.append(doc)
        elif kube_object(data):
            before = len(dep.workers)
            recognised = _kube(doc, dep, target, engine_configs) or recognised
            if "--config-text" in doc.text:
                from . import llmd

                recognised = llmd.read_config_text(doc, dep) or recognised  # an EPP's config given inline
            meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
            owners.setdefault((str(data.get("kind")), str(meta.get("name", ""))), []).extend(dep.workers[before:])
            if data.get("kind") == "ConfigMap":
                in_configmaps.append(embedded_v0.in_configmap(doc))
        elif _values(doc, dep, target):
            recognised = True
        else:  # values no reader knows: a Dynamo v0 config may be one of their block strings
            in_values += embedded_v0.in_values(doc)
    autoscale.apply(scalers, owners)
    if any(isinstance(d.data, dict) and d.data.get("kind") == "ModelServer" for d in docs):
        from . import kthena

        kthena.route(dep, docs)  # a Kthena ModelServer's pdGroup gives roles to the pods it selects
    v0_configs = embedded_v0.deployments(in_configmaps, in_values, target)
    for v0 in v0_configs:
        share_targets(v0)
    if template:
        from . import helm

        helm.mark_conditions(dep, docs)
        for v0 in v0_configs:
            helm.mark_conditions(v0, docs)
    from .engine_configs import link_engine_configs

    link_engine_configs(dep, engine_configs)
    _finish(dep)
    if not recognised and not dep.workers:
        if not v0_configs:
            return None
        # the file is these configs and nothing else we read: the first is the file's deployment, as a v0 file would be
        dep, v0_configs = v0_configs[0], v0_configs[1:]
    else:
        dep.doc = docs[0] if len(docs) == 1 else None
    dep.parts += v0_configs
    return dep


def _kube(doc: SourceDocument, dep: Deployment, target: Target, engine_configs: dict) -> bool:
    """One Kubernetes object by its declared kind (and group where two systems use one kind name)."""
    from . import dgd, helm, kube, llmd

    data = doc.data
    kind, group = str(data.get("kind")), str(data.get("apiVersion")).rpartition("/")[0]
    if kind == "DynamoGraphDeployment":
        dgd.read(doc, dep, target)
    elif kind == "EndpointPickerConfig":
        llmd.read_epp(doc, dep)
    elif kind == "ConfigMap" and helm.is_modelservice_preset(data):
        helm.read_modelservice_preset(doc, dep, target)
    elif kind == "ConfigMap":
        from .engine_configs import configmap

        configmap(doc, engine_configs)
        return False
    elif kind == "Service" and group == "":
        from ..kube_services import read_service

        svc = read_service(data, doc.path)
        if svc is not None:
            dep.services.append(svc)
        return False
    elif kind == "ModelService" and group == "llm-d.ai":
        from . import modelservice

        modelservice.read(doc, dep, target)
    elif kind == "StormService" and group == "orchestration.aibrix.ai":
        from . import aibrix

        aibrix.read(doc, dep, target)
    elif kind in ("ClusterServingRuntime", "ServingRuntime", "InferenceService") and group == "ome.io":
        from . import ome

        ome.read(doc, dep, target)
    elif kind == "RoleBasedGroup" and group == "workloads.x-k8s.io":
        from . import rbg

        rbg.read(doc, dep, target)
    elif kind in ("ModelServing", "ModelBooster") and group == "workload.serving.volcano.sh":
        from . import kthena

        return kthena.read(doc, dep, target)
    elif kind == "HelmRelease" and group == "helm.toolkit.fluxcd.io":
        from . import helmrelease

        return helmrelease.read(doc, dep, target, _values)
    elif kind in ("LLMInferenceService", "LLMInferenceServiceConfig") and group == "serving.kserve.io":
        from . import kserve

        kserve.read(doc, dep, target)
    else:
        return kube.read_object(doc, dep, target)
    return True


def _values(doc: SourceDocument, dep: Deployment, target: Target) -> bool:
    """A document that is no Kubernetes object: compose, a TensorRT-LLM disaggregated config, or chart values."""
    from . import ascend_nightly, charts, compose, llmd, ray_serve, recipes, srt_slurm, srt_slurm_variants, trtllm

    data = doc.data
    from . import ecs

    if ecs.looks_like_task_definition(data):
        ecs.read(doc, dep, target)
    elif ray_serve.looks_like_serve_config(data):
        ray_serve.read(doc, dep, target)
    elif srt_slurm.looks_like_recipe(data):
        srt_slurm.read(doc, dep, target)
    elif (variants := srt_slurm_variants.override_variants(doc)) is not None:
        srt_slurm_variants.read(doc, dep, target, _finish, variants)
    elif compose.looks_like_compose(data):
        compose.read(doc, dep, target)
    elif trtllm.looks_like_disagg_config(data):
        trtllm.read_disagg_config(doc, dep, target)
    elif llmd.looks_like_gaie_values(data):
        llmd.read_gaie_values(doc, dep)
    elif llmd.looks_like_router_values(data):
        llmd.read_router_values(doc, dep)
    elif llmd.looks_like_modelservice_values(data):
        llmd.read_modelservice_values(doc, dep, target)
    elif charts.looks_like_production_stack(data):
        charts.read_production_stack(doc, dep, target)
    elif charts.looks_like_sglang_lws(data):
        charts.read_sglang_lws(doc, dep, target)
    elif recipes.looks_like_recipe(data):
        recipes.read(doc, dep, target)
    elif trtllm.looks_like_engine_config_alone(data):
        trtllm.read_engine_config_alone(doc, dep, target)
    elif ascend_nightly.looks_like_internal(data):
        ascend_nightly.read_internal(doc, dep, target)
    elif ascend_nightly.looks_like_external(data):
        ascend_nightly.read_external(doc, dep, target)
    else:
        from . import sglang_config

        if not sglang_config.looks_like_server_args(data):
            return False
        sglang_config.read(doc, dep, target)
    return True


def link_files(deps: list[Deployment]) -> None:
    """Resolve what a file names in another file of the same run (an OME InferenceService's runtime, the SGLang
    server-argument file a `--config` reads)."""
    if any(d.links for d in deps):
        from . import ome, sglang_config

        ome.link(deps)
        sglang_config.link(deps)


def unread_kinds(path: str, text: str) -> list[str]:
    """`apiVersion/kind` of each Kubernetes object in a YAML file that no reader reads (for `--verbose`), or the
    builders of a Ray Serve config's applications that are not Ray's P/D builder: such a file is "not a serving
    config I know", never an error and never read as another format."""
    try:
        docs = load_documents(path, text)
    except ConfigError:
        from . import helm

        # a Helm template is read for its literal parts (read_yaml): its kinds are those of that reading
        docs = helm.template_documents(path, text) or []
    objects = [d.data for d in docs if isinstance(d.data, dict)]
    from .ray_serve import unknown_builders

    builders = [b for o in objects for b in unknown_builders(o)]
    if builders and len(objects) == 1:
        return builders
    if not objects or not all(kube_object(o) for o in objects):
        return []
    return [f"{o.get('apiVersion')}/{o.get('kind')}" for o in objects]


def _finish(dep: Deployment) -> None:
    """A further config of a file (Deployment.parts) completed as the file's own is."""
    from .engine_configs import sglang_config_refs

    sglang_config_refs(dep)
    dynamo_default_roles(dep)
    share_targets(dep)


def dynamo_default_roles(dep: Deployment) -> None:
    """Roles the system assigns from outside each engine's command (routers, proxies, labels, defaults): schemas/roles.py."""
    from ..roles import link_roles

    link_roles(dep)


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


__all__ = ["FORMATS", "SERVING_MARKERS", "is_script", "read_script", "read_yaml", "link_files", "unread_kinds", "Span"]
