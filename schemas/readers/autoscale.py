"""Autoscalers in the same file as the workload they scale: the replicas the workload keeps at least is the
autoscaler's floor, not the `replicas` the workload writes (the autoscaler owns that field once it runs).

- HorizontalPodAutoscaler (autoscaling/v1, v2): `spec.scaleTargetRef` {kind, name}, `spec.minReplicas`, which
  defaults to 1 (Kubernetes API reference, HorizontalPodAutoscalerSpec).
- KEDA ScaledObject (keda.sh/v1alpha1): `spec.scaleTargetRef` {name, kind defaulting to Deployment},
  `spec.minReplicaCount`, which defaults to 0 (KEDA documentation, ScaledObject specification).
"""

from __future__ import annotations

from typing import Any

from ..model import Setting, Worker
from ..source import SourceDocument, Span
from .common import count

SCALERS = {"HorizontalPodAutoscaler": ("minReplicas", 1), "ScaledObject": ("minReplicaCount", 0)}


def is_scaler(data: Any) -> bool:
    kind = data.get("kind")
    group = str(data.get("apiVersion", "")).rpartition("/")[0]
    return (kind == "HorizontalPodAutoscaler" and group == "autoscaling") or (kind == "ScaledObject" and group == "keda.sh")


def apply(scalers: list[SourceDocument], owners: dict[tuple[str, str], list[Worker]]) -> None:
    """Set the floor of each scaled workload's workers (`owners`: (kind, name) -> the workers its object holds)."""
    for doc in scalers:
        kind = str(doc.data.get("kind"))
        spec = doc.data.get("spec") if isinstance(doc.data.get("spec"), dict) else {}
        ref = spec.get("scaleTargetRef") if isinstance(spec.get("scaleTargetRef"), dict) else {}
        target = (str(ref.get("kind", "Deployment")), str(ref.get("name", "")))
        key, default = SCALERS[kind]
        if key in spec:
            floor = Setting(count(spec[key]), Span(*doc.marks.value(("spec", key))), f"{kind} {key}")
        else:
            floor = Setting(default, Span(*doc.marks.key(("spec",))) if "spec" in doc.data else None, f"{kind} {key} default ({default})")
        for w in owners.get(target, []):
            w.replicas = floor
