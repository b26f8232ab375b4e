"""Dynamo v0 service configs written in strings of one file (chart values' block strings, ConfigMaps' `data`), as
deployments: which of them are one deployment, and which are each a config of its own."""

from __future__ import annotations

from collections.abc import Iterable

from ..knowledge.versions import Target
from ..model import Deployment
from ..source import SourceDocument


def in_configmap(doc: SourceDocument) -> list[SourceDocument]:
    """The Dynamo v0 configs among a ConfigMap's `data` entries (each the file of that name where it is mounted)."""
    data = doc.data.get("data")
    return documents(doc, [(("data", k), v) for k, v in data.items() if isinstance(v, str)]) if isinstance(data, dict) else []


def in_values(doc: SourceDocument) -> list[SourceDocument]:
    """The Dynamo v0 configs among the block strings of a values document."""
    from .embedded import block_strings

    return documents(doc, block_strings(doc.data))


def documents(doc: SourceDocument, strings: Iterable[tuple[tuple, str]]) -> list[SourceDocument]:
    """The strings ((path, text) in `doc`) that are Dynamo v0 configs, each as a document at `doc`'s positions."""
    from .embedded import v0_document
    from .helm import literal_text

    found = (v0_document(doc, path, text, literal_text if "{{" in text else None) for path, text in strings)
    return [v for v in found if v is not None]


def deployments(in_configmaps: list[list[SourceDocument]], in_values: list[SourceDocument], target: Target) -> list[Deployment]:
    """The Dynamo v0 configs written in strings of a file, as deployments: each string is the `-f` file of a
    `dynamo serve` of its own (embedded.v0_document).

    Which of them run together is decided outside the file. ConfigMaps are objects of the file, created together
    when it is applied or installed, and a process reads the one its pod mounts: the configs of several ConfigMaps,
    one each, are one deployment (the decode and the prefill worker of a chart, each in its own ConfigMap and pod,
    meet in Dynamo's namespace). Several configs in one ConfigMap are files side by side, of which each `dynamo serve
    -f` picks one (alternatives), and block strings of values are mounted, or not, as the chart's templates say: for
    these nothing here says which run together, so each is read as its own config and none is paired with another
    (Deployment.parts)."""
    from . import dynamo_v0
    from .embedded import rendered

    groups = [[d for ds in in_configmaps for d in ds]] if in_configmaps and all(len(ds) <= 1 for ds in in_configmaps) else \
        [[d] for ds in in_configmaps for d in ds]
    groups += [[d] for d in in_values]
    out = []
    for group in (g for g in groups if g):
        alongside = len(group) > 1 and any(dynamo_v0.has_prefill_section(d.data) for d in group)
        read = [dynamo_v0.read(d, target, rendered, prefill_alongside=alongside) for d in group]
        dep = read[0]
        if len(read) > 1:
            # one deployment of several files: no one document to edit, so fixes are said, not made (context.fix_set_key)
            dep = Deployment(path=dep.path, format="dynamo-v0", lines=dep.lines)
            for r in read:
                dep.workers += r.workers
                dep.issues += r.issues
        out.append(dep)
    for dep in out:
        dep.maybe_alongside = [w for other in out if other is not dep for w in other.workers]
    return out
