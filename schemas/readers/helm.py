"""Helm chart templates (`templates/*.yaml` with Go `{{ }}` actions that make the file invalid YAML until Helm renders
it), read for what is literal: each action keeps its place, a value action is a value set at render time (Unknown,
`gotemplate.py`), and a line that is nothing but an action (an `if`, an `include ... | nindent`) is blank. The objects
are then recognised by their `apiVersion`/`kind` like any manifest.

Read here too: the ModelService preset ConfigMaps of llm-d (llm-d-deployer's modelservice presets). The ModelService
controller deserializes the ConfigMap's `prefillDeployment` and `decodeDeployment` keys into the prefill and decode
Deployments and labels their pods `llm-d.ai/role: prefill|decode` (llm-d/llm-d-model-service
internal/controller/child_resources.go: BaseConfig deserialize("prefillDeployment"/"decodeDeployment"), getPodLabels,
at 403e98362eee3db82f4c7e8f0c630605e47f040c); the replica counts come from the ModelService that names the preset.
"""

from __future__ import annotations

import re

from ..knowledge.versions import Target
from ..model import Deployment, Host, Setting, Unknown
from ..source import ConfigError, SourceDocument, load_documents
from . import gotemplate

# `{{ `{{ .Inner }}` }}`: a literal action for the next renderer (the ModelService controller), one value here
_QUOTED = re.compile(r"\{\{-?\s*`[^`]*`\s*-?\}\}")
# a line (or lines: a `{{/* */}}` comment may span several) holding nothing but actions. An action ends at the first
# `}}` outside a string: a raw `...` or "..." string is one token of Go's template lexer, `}}` and all (golang/go@34aeeef
# src/text/template/parse/lex.go lexInsideAction, lexRawQuote, lexQuote), as in ``{{ `{{- if .X }}` }}``
_ONLY_ACTION = re.compile(r"^[ \t]*(\{\{(?:`[^`]*`|\"(?:[^\"\\\n]|\\.)*\"|[^}`\"]|\}(?!\}))*\}\}[ \t]*)+$", re.M)
# keys of a preset ConfigMap the ModelService controller turns into the prefill / decode Deployment
PRESET_ROLES = {"prefillDeployment": "prefill", "decodeDeployment": "decode"}


def _empty(m: re.Match) -> str:
    # an empty line, not one of blanks: YAML takes a block scalar's indentation from its leading blank lines too
    # (PyYAML `scan_block_scalar_indentation`), so a `{{- if }}` line of 40 columns opening a `|` block would end it
    return "\n" * m.group(0).count("\n")


def literal_text(text: str) -> str:
    """The template with every line where it was and every character of a line at its column: lines that are only
    actions emptied, other actions as placeholders that read as set at render time."""
    text = _ONLY_ACTION.sub(_empty, gotemplate.first_alternative(text))
    text = _QUOTED.sub(lambda m: "${_T" + "_" * (len(m.group(0)) - 5) + "}", text)
    return gotemplate.rewrite(text)


def template_documents(path: str, text: str) -> list[SourceDocument] | None:
    """The documents of a Helm template read for what is literal, or None when the text holds no `{{ }}` action or
    is not YAML even so."""
    if "{{" not in text or not gotemplate.ACTION.search(text):
        return None
    try:
        # the branches of an `{{ if }}...{{ else }}` write the same keys in turn: the last is kept, and what lies in a
        # branch is read as holding only when its condition does (mark_conditions)
        docs = load_documents(path, literal_text(text), last_key_wins=True)
    except ConfigError:
        return None
    for d in docs:
        d.lines = text.splitlines()  # the file as written: what findings quote, and where its `{{ if }}` blocks are
    return docs or None


def is_modelservice_preset(data: dict) -> bool:
    inner = data.get("data")
    return isinstance(inner, dict) and any(isinstance(inner.get(k), str) for k in PRESET_ROLES)


def read_modelservice_preset(doc: SourceDocument, dep: Deployment, target: Target) -> None:
    """The prefill and decode Deployments of a ModelService preset ConfigMap, positioned in the outer file."""
    from . import kube
    from .embedded import embedded_yaml

    dep.format = "llm-d"
    for key, role in PRESET_ROLES.items():
        text = doc.data["data"].get(key)
        if not isinstance(text, str):
            continue
        # the controller renders the preset's `{{ }}` actions (llm-d-model-service internal/controller
        # child_resources.go, BaseConfig templates: `{{ "app_port" | getPort }}`, `{{ .HFModelName }}`) before it
        # reads the YAML: read with each action a value set at render time (Unknown). It reads it with
        # sigs.k8s.io/yaml Unmarshal (BaseConfigFromCM), which keeps the last of a key written twice.
        found = embedded_yaml(doc, ("data", key), text, literal=literal_text, last_key_wins=True)
        if found is None or not found[0] or not isinstance(found[0][0].data, dict):
            continue
        inner, to_file = found
        sub = Deployment(path=doc.path, format="llm-d")
        kube.read_object(inner[0], sub, target)
        conds = gotemplate.conditional_spans(text, lambda off, t=text: _line_col(t, off))
        for w in sub.workers:
            gotemplate.mark(w, conds)
            w.path = doc.path
            w.span = to_file(w.span)
            w.settings = {k: Setting(s.value, to_file(s.span) if s.span else None, s.origin) for k, s in w.settings.items()}
            w.flags = {k: Setting(s.value, to_file(s.span) if s.span else None, s.origin) for k, s in w.flags.items()}
            w.name = f"{key}/{w.name}"
            w.replicas = Setting(Unknown("set by the ModelService that uses this preset"), None, "ModelService replicas")
            if w.is_engine and w.role_from in ("name", "none", "default"):
                w.set_role(role, f"ModelService preset key {key} (the controller labels its pods llm-d.ai/role: {role})", "field")
            w.notes.append(f"read from the ModelService preset's {key}: the model, image and replicas come from the ModelService, which is not in this file")
            dep.workers.append(w)


def mark_conditions(dep: Deployment, docs: list[SourceDocument]) -> None:
    """Values between an `{{ if }}` (range, with) and its end are there only when the condition holds: Unknown. A
    condition around a whole object only decides whether the object exists, so it leaves the object's values as
    written; so does one without `{{ else }}` around a whole worker (an OME runtime's `decoderConfig` under
    `{{ if $isPdMode }}`), while an if/else around it chooses between alternatives and leaves it unknown."""
    if not docs:
        return
    written = "\n".join(docs[0].lines)
    starts = [(p.line, p.column) for p in (d.marks.value(()) for d in docs)]
    blocks = [c for c in gotemplate.conditional_blocks(written, lambda off: _line_col(written, off))
              if not any(c[0] <= s <= c[1] for s in starts)]
    conds = [(a, b) for a, b, _ in blocks]
    for w in dep.workers:
        at = (w.span.line, w.span.column) if w.span is not None else None
        gotemplate.mark(w, [(a, b) for a, b, alt in blocks if alt or at is None or not a <= at < b])
        w.name = gotemplate.PLACEHOLDER.sub("{{ }}", w.name)  # a name made at render time, said so (not `${_T___}`)
        at = w.host.decided_at
        if at is not None and any(a <= at < b for a, b in conds):
            # `hostNetwork: true` inside `{{ if }}`: the pod is on its node's network only when the values say so, so
            # whether it shares ports and localhost with another pod on that node is not known (held-out corpus 7:
            # a false DG304 on aibrix's SGLang template, whose values leave network.hostNetwork false)
            pod = w.name.rsplit("/", 1)[0]
            w.host = Host("unknown", pod, f"conditional-host:{w.path}:{pod}")
        said = [w.settings.get("kv_role"), w.settings.get("disaggregation_mode")] + [w.flags.get(f) for f in ("is-prefill-worker", "is-decode-worker", "server-role")]
        if w.role_from in ("flag", "connector") and any(x is not None and not x.known for x in said):
            w.set_role("unknown", "its role is written inside a template condition ({{ if }})", "none")


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1
