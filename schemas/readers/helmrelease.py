"""Flux's `HelmRelease` (helm.toolkit.fluxcd.io): its `spec.values` are the values Flux's helm-controller installs its
chart with. `spec.valuesFrom` (ConfigMaps and Secrets) are merged in the order given, then `spec.values` over them:
values always take precedence (fluxcd.io/flux/components/helm/helmreleases, "Values overrides"). They are read as the
chart's values file would be, at their own lines in the manifest. A release that also takes values from elsewhere
is not read: a key its `values` leave out may be set there, not left at the chart's default."""

from __future__ import annotations

from ..knowledge.versions import Target
from ..model import Deployment
from ..source import SourceDocument, SourceMap

GROUP = "helm.toolkit.fluxcd.io"


def values_document(doc: SourceDocument) -> SourceDocument | None:
    """`spec.values` as a document of its own, at the manifest's positions; None when it is no mapping."""
    spec = doc.data.get("spec")
    values = spec.get("values") if isinstance(spec, dict) else None
    if not isinstance(values, dict):
        return None
    prefix = ("spec", "values")
    marks = SourceMap()
    for source, target in ((doc.marks.keys, marks.keys), (doc.marks.values, marks.values)):
        for path, span in source.items():
            if path[:2] == prefix:
                target[path[2:]] = span
    return SourceDocument(doc.path, doc.text, values, marks, doc.lines)


def read(doc: SourceDocument, dep: Deployment, target: Target, read_values) -> bool:
    """The release's values through `read_values` (the values readers); whether a reader took them."""
    values = values_document(doc)
    if values is None or doc.data["spec"].get("valuesFrom"):
        return False
    return read_values(values, dep, target)
