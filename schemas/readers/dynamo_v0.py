"""Dynamo v0 YAML (`dynamo serve -f config.yaml`, releases 0.1-0.3) into the deployment model.

Each engine section becomes a worker through the argument list Dynamo built from it (ServiceConfig.as_args: Common
keys named in `common-configs` first, then the section's own; `true` a bare flag, `false` nothing, a mapping JSON),
parsed by the same flag tables as a command line. Every argument keeps the position of the key or value it came from.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .. import engines, knowledge
from ..cmdline import Arg, Command, parse_flags
from ..config import DynamoV0Parse, Section, known_services, parse_dynamo_v0
from ..knowledge import Evidence
from ..knowledge.versions import Target
from ..model import Deployment, Host, Issue, Setting, Unknown, Worker
from ..source import SourceDocument, Span

_PROGRAM = {"vllm": "dynamo-v0:vllm", "sglang": "dynamo-v0:sglang", "trtllm": "dynamo-v0:trtllm"}


def read(doc: SourceDocument, base: Target, rendered: Callable[[Any], bool] | None = None, prefill_alongside: bool = False) -> Deployment:
    """`rendered`: true for a value a template fills in before Dynamo reads the file (config.parse_dynamo_v0): Unknown.
    `prefill_alongside`: a config deployed with this one has a prefill worker (a VllmWorker is then no aggregated one)."""
    parse = parse_dynamo_v0(doc, rendered)
    dep = Deployment(path=doc.path, format="dynamo-v0", doc=doc, lines=doc.lines)
    target = base.copy()
    sdk = knowledge.fact("dynamo.v0.sdk")
    target.add(Evidence("dynamo", sdk.releases, "a Dynamo v0 service config (dynamo serve -f)"))
    data = doc.data if isinstance(doc.data, dict) else {}
    if "Common" in data or any(isinstance(v, dict) and "common-configs" in v for v in data.values()):
        target.add(Evidence("dynamo", knowledge.fact("dynamo.v0.common_configs").releases, "the file uses Common/common-configs"))
    services = known_services()
    has_prefill = prefill_alongside or has_prefill_section(data)
    for name, sec in parse.sections.items():
        info = services.get(name)
        if info is None or info.get("role") in ("shared", "planner", "monitoring"):
            continue
        w = _worker(doc, parse, name, sec, info, target, has_prefill, rendered or _never)
        dep.workers.append(w)
    for issue in parse.issues:
        m = doc.marks.key(issue.path) if issue.key_position else doc.marks.value(issue.path)
        data_items: list[tuple[str, Any]] = [("path", issue.path), ("section", issue.path[0])]
        dep.issues.append(Issue(issue.kind, Span(*m), issue.message, issue.suggestion, tuple(data_items)))
    for name, sec in parse.sections.items():
        for key, value in sec.own.items():
            if value is False:
                k, v = doc.marks.key((name, key)), doc.marks.value((name, key))
                dep.issues.append(Issue("false_dropped", Span(k.line, k.column, v.end_line, v.end_column), f"{key}: false", None,
                                        (("section", name), ("key", key), ("path", (name, key)))))
    return dep


def has_prefill_section(data: Any) -> bool:
    services = known_services()
    return isinstance(data, dict) and any(services.get(n, {}).get("role") == "prefill" for n in data)


def _never(value: Any) -> bool:
    return False


def _worker(doc: SourceDocument, parse: DynamoV0Parse, name: str, sec: Section, info: dict, target: Target, has_prefill: bool,
            rendered: Callable[[Any], bool]) -> Worker:
    head = doc.marks.key((name,))
    span = Span(*head)
    role = info["role"]
    engine = info.get("engine")
    program = _PROGRAM.get(engine or "", "dynamo-v0:frontend" if role == "frontend" else f"dynamo-v0:{role}")
    w = Worker(name=name, role=role, role_why=f"section {name}", program=program, engine=engine, system="dynamo", path=doc.path, span=span,
               target=target.copy(), host=Host("process", "dynamo serve", f"dynamo-serve:{doc.path}"), section=(name,), role_from="field")
    args = _argv(doc, sec)
    flags, flag_spans, positional = parse_flags(args)
    engines.apply_command(w, Command(program, args, flags, flag_spans, positional, {}, span))
    bad = {tuple(i.path[:2]) for i in parse.issues if i.kind == "wrong_type"}
    for key in sec.resolved:
        setting = w.settings.get(engines.setting_of(str(key)))
        if setting is not None and tuple(sec.path_of(key)[:2]) in bad:  # the worker would not start with it (DG402): no rule may read it
            w.settings[engines.setting_of(str(key))] = Setting(Unknown(f"{key} has a value of the wrong type"), setting.span, setting.origin)
    if role == "decode" and name == "VllmWorker" and not has_prefill:
        w.set_role("aggregated", "VllmWorker with no prefill section", "field")
    if role == "by-flags":
        w.role = "unknown"
        engines.infer_role(w, [name])
    if role == "frontend":
        for key in ("served_model_name", "model"):
            if sec.is_set(key):
                p = doc.marks.value(sec.path_of(key))
                w.settings[key] = Setting(sec.resolved[key], Span(*p), key)
    sargs = sec.own.get("ServiceArgs") if isinstance(sec.own.get("ServiceArgs"), dict) else {}
    model = sec.model
    if hasattr(model, "service_args"):
        sa = model.service_args
        if "workers" in sargs:
            w.replicas = Setting(_count(sa.workers, sargs["workers"], rendered), Span(*doc.marks.value((name, "ServiceArgs", "workers"))), "ServiceArgs.workers")
        res = sargs.get("resources") if isinstance(sargs.get("resources"), dict) else {}
        if "gpu" in res:
            w.gpus = Setting(_count(sa.resources.gpu, res["gpu"], rendered), Span(*doc.marks.value((name, "ServiceArgs", "resources", "gpu"))), "ServiceArgs.resources.gpu")
        envs = sargs.get("envs")
        for key, value, path in _envs(name, envs):
            engines.apply_env(w, {key: Setting(str(value), Span(*doc.marks.value(path)), "ServiceArgs.envs")})
    return w


def _count(typed: Any, written: Any, rendered: Callable[[Any], bool]) -> Any:
    from .gotemplate import WHY_VALUE

    return Unknown(WHY_VALUE) if rendered(written) else typed


def _argv(doc: SourceDocument, sec: Section) -> list[Arg]:
    """The arguments as_args built from a section, each positioned at the key (flag) or value it came from."""
    out: list[Arg] = []
    for key, value in sec.resolved.items():
        if key in ("ServiceArgs", "common-configs") or not isinstance(key, str):
            continue
        path = sec.path_of(key)
        k = Span(*doc.marks.key(path))
        v = Span(*doc.marks.value(path))
        if value is True:
            out.append(Arg(f"--{key}", k))
        elif value is False or value is None:
            continue  # dropped (reported by DG404 where the default is on)
        else:
            text = json.dumps(value) if isinstance(value, dict) else str(value)
            out.append(Arg(f"--{key}", k))
            # positions inside a value matter only for JSON (a finding on its kv_connector key)
            out.append(Arg(text, v, _chars(doc, v, text) if text.startswith("{") else ()))
    return out


def _chars(doc: SourceDocument, span: Span, text: str) -> tuple[tuple[int, int], ...]:
    """Per-character positions of a one-line value; () when it spans lines or is written otherwise."""
    line = doc.line_text(span.line)
    col = span.column - 1
    if col < len(line) and line[col] in "'\"":
        col += 1
    if span.line == span.end_line and line[col : col + len(text)] == text:
        return tuple((span.line, col + 1 + i) for i in range(len(text)))
    return ()


def _envs(section: str, envs: Any) -> list[tuple[str, Any, tuple]]:
    out = []
    if isinstance(envs, dict):
        for k, v in envs.items():
            out.append((str(k), v, (section, "ServiceArgs", "envs", k)))
    elif isinstance(envs, list):
        for i, item in enumerate(envs):
            if isinstance(item, dict) and "name" in item:
                out.append((str(item["name"]), item.get("value"), (section, "ServiceArgs", "envs", i, "value")))
            elif isinstance(item, str) and "=" in item:
                k, _, v = item.partition("=")
                out.append((k, v, (section, "ServiceArgs", "envs", i)))
    return out
