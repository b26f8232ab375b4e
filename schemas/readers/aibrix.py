"""AIBrix `StormService` (orchestration.aibrix.ai/v1alpha1): `spec.template.spec.roles[]`, each with `name`,
`replicas`, `podGroupSize` and a pod `template` (field names from vllm-project/aibrix
api/orchestration/v1alpha1/stormservice_types.go and roleset_types.go at e3e10f9).

A role's engine flags decide its role. When they do not (vLLM with `kv_both`), the role's name does, because AIBrix's
gateway sends prefills to pods whose `role-name` label is `prefill` and decodes to `decode`
(pkg/plugins/gateway/algorithms/pd_disaggregation.go at e3e10f9: PDRoleIdentifier, PDRolePrefill, PDRoleDecode).
`spec.replicas` role sets each run `replicas` pods of every role; `podGroupSize` pods form one engine.

For vLLM, the gateway (its default `shfs` transfer) sends the decode side the prefill pod's IP as `remote_host`
(pkg/plugins/gateway/algorithms/pd/transfer/shfs.go at e3e10f9), so a side-channel host that binds every address
(0.0.0.0) is never what the decode side dials; a loopback one still binds where no other pod reaches.
"""

from __future__ import annotations

from ..knowledge.versions import Target
from ..model import Deployment, Setting, Unknown
from ..shell import ShellReader
from ..source import SourceDocument, Span
from .common import count, no_role_from_names
from .kube import pod_workers

AIBRIX_ROLE_NAMES = ("prefill", "decode")  # the role-name label values AIBrix's P/D router reads
ROLE_NAME_LABEL, STORM_SERVICE_LABEL = "role-name", "storm-service-name"  # constants.RoleNameLabelKey, StormServiceNameLabelKey
ROLE_NAME_ENV, STORM_SERVICE_ENV = "ROLE_NAME", "STORM_SERVICE_NAME"  # constants.RoleNameEnvKey, StormServiceNameEnvKey
GATEWAY_SETS_REMOTE_HOST = "AIBrix's gateway sends the decode side the prefill pod's IP as remote_host"


def read(doc: SourceDocument, dep: Deployment, target: Target) -> None:
    data = doc.data
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    name = str(meta.get("name", "stormservice"))
    spec = data.get("spec") if isinstance(data.get("spec"), dict) else {}
    dep.format = "kubernetes"
    sets = count(spec.get("replicas", 1))
    tmpl = spec.get("template") if isinstance(spec.get("template"), dict) else {}
    rs = tmpl.get("spec") if isinstance(tmpl.get("spec"), dict) else {}
    roles = rs.get("roles") if isinstance(rs.get("roles"), list) else []
    reader = ShellReader(doc.text)
    for i, role in enumerate(roles):
        if not isinstance(role, dict):
            continue
        rname = str(role.get("name", i))
        base = ("spec", "template", "spec", "roles", i)
        pod = role.get("template") if isinstance(role.get("template"), dict) else {}
        labels: dict[str, str] = {}
        pmeta = pod.get("metadata") if isinstance(pod.get("metadata"), dict) else {}
        if isinstance(pmeta.get("labels"), dict):
            labels.update({str(k): str(v) for k, v in pmeta["labels"].items()})
        group = count(role.get("podGroupSize", 1))
        nodes = group if isinstance(group, int) and group > 0 else 1
        for w in pod_workers(doc, dep, f"{name}/{rname}", base + ("template", "spec"), pod.get("spec"), None, target, labels, [], nodes, reader):
            w.replicas = _replicas(doc, base, role, spec, sets)
            # the RoleSet controller labels every role pod and injects the same names as env into every container
            # (pkg/controller/roleset/utils.go:118-122 labels, :200-220 env, constants/stormservice.go:24-27,59-62 at
            # e3e10f9): what a router's label selector (`role-name=prefill`, `storm-service-name=$STORM_SERVICE_NAME`) finds
            w.labels.update({ROLE_NAME_LABEL: rname, STORM_SERVICE_LABEL: name})
            for key, value in ((STORM_SERVICE_ENV, name), (ROLE_NAME_ENV, rname)):
                w.env.setdefault(key, Setting(value, None, f"injected by AIBrix's RoleSet controller ({key})"))
            no_role_from_names(w)  # a container's name is no field AIBrix reads
            if w.is_engine and w.role in ("unknown", "aggregated") and rname in AIBRIX_ROLE_NAMES:
                w.set_role(rname, f"StormService role {rname} (AIBrix's gateway routes {rname} to it by role name)", "field")
            host = w.settings.get("side_channel_host")
            if w.engine == "vllm" and host is not None and host.known and str(host.value).strip() == "0.0.0.0":
                w.settings["side_channel_host"] = Setting(Unknown(GATEWAY_SETS_REMOTE_HOST), host.span, host.origin)


def _replicas(doc: SourceDocument, base: tuple, role: dict, spec: dict, sets) -> Setting:
    per_set = count(role.get("replicas", 1))
    if isinstance(per_set, int) and isinstance(sets, int):
        total = per_set * sets
    else:
        total = Unknown(f"replicas {role.get('replicas')!r} × role sets {spec.get('replicas')!r}")
    if "replicas" in role:
        return Setting(total, Span(*doc.marks.value(base + ("replicas",))), "role replicas")
    if "replicas" in spec:
        return Setting(total, Span(*doc.marks.value(("spec", "replicas"))), "StormService replicas")
    return Setting(total, None, "default")
