"""What every reader shares: a worker from a command line, release evidence from image tags, positioned YAML scalars."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .. import engines, knowledge
from ..cmdline import SHELLS, UNKNOWN_WRAPPER, Arg, Command, find_command, parse_flags, shell_script_at
from ..dynamo_scripts import runs_dynamo
from ..images import engine_from_image, vllm_serve_image
from ..knowledge.versions import Target, parse_version
from ..model import Host, Setting, Unknown, Worker
from ..source import SourceDocument, Span

if TYPE_CHECKING:
    from ..shell import Launch, ShellReader

# image repository (last path parts) -> (system, what the tag names)
_IMAGES = (
    (re.compile(r"ai-dynamo/(vllm|sglang|tensorrtllm|trtllm)-runtime$"), "dynamo"),
    (re.compile(r"(^|/)dynamo(-[a-z]+)?$"), "dynamo"),
    (re.compile(r"(^|/)vllm-openai$"), "vllm"),
    (re.compile(r"(^|/)vllm/vllm-openai$|(^|/)vllm-cpu$"), "vllm"),
    (re.compile(r"lmsysorg/sglang$"), "sglang"),
    (re.compile(r"(^|/)llm-d(-cuda)?(-dev)?$"), "llm-d"),
)


def dig(data: Any, *keys: str) -> Any:
    """`data[k1][k2]...` where every step is a mapping that has the key; None otherwise (a config may put anything anywhere)."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def image_evidence(target: Target, image: str | None) -> tuple[str, str, str] | None:
    """An image tag that names a release narrows the target (`vllm-runtime:0.3.2` -> dynamo 0.3.2). A tag that names a
    release no table describes (`vllm-runtime:0.6.1.post1`, a patch image) leaves the target as it is and comes back as
    (system, release, why), so that a rule whose fact holds across a range of releases may still place it."""
    if not isinstance(image, str) or not image or "$" in image:
        return None
    ref = image.split("@")[0]
    repo, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "")
    if not tag:
        return None
    for pattern, system in _IMAGES:
        if pattern.search(repo):
            why = f"image tag {repo.rsplit('/', 1)[-1]}:{tag}"
            if knowledge.evidence_from_tag(target, system, tag, why):
                return None
            release = parse_version(tag)
            return (system, release, why) if release else None
    return None


def new_worker(cmd: Command, *, path: str, name: str, host: Host, hints: list[str], env: dict[str, Arg], target: Target,
               image: str | None = None, labels: dict[str, str] | None = None) -> Worker:
    engine, system = engines.PROGRAMS.get(cmd.program, (None, "unknown"))
    w = Worker(name=name, role="unknown", role_why="", program=cmd.program, engine=engine, system=system, path=path, span=cmd.start,
               target=target.copy(), host=host, labels=dict(labels or {}))
    unplaced = image_evidence(w.target, image)
    if unplaced is not None and unplaced[0] == "dynamo":
        w.settings["dynamo_image_release"] = Setting(unplaced[1], None, unplaced[2])
    if engine == "vllm" and isinstance(image, str) and image.split("@")[0].split(":")[0].rstrip("/").rsplit("/", 1)[-1] == "vllm-ascend":
        w.set("vllm_plugin", "vllm-ascend", None, f"image {image}")  # vllm-ascend's images (quay.io/ascend/vllm-ascend) install the plugin
    elif engine == "vllm" and (built := vllm_serve_image(image)) is not None:  # images.VLLM_SERVE_IMAGES
        if built.plugin:
            w.set("vllm_plugin", built.plugin, None, f"image {image}")
        from ..knowledge.versions import Evidence

        w.target.add(Evidence("vllm", frozenset({built.vllm}), f"image {image}: {built.why}", names_release=True))
    engines.apply_env(w, {k: Setting(a.text, a.span, f"env {k}") for k, a in env.items()})
    engines.apply_env(w, {k: Setting(a.text, a.span, f"env {k}") for k, a in cmd.env.items()})
    engines.apply_command(w, cmd)
    engines.infer_role(w, [h for h in hints if h] + [name])
    if cmd.program == "unknown-module":
        w.set_role("unknown", "the module is set at run time", "none")
        w.notes.append(f"`python -m {cmd.args[2].text if len(cmd.args) > 2 else '?'}`: which program runs is set at run time")
    if cmd.program == "dynamo-serve":
        graph = cmd.positional[0].text if cmd.positional else "?"
        config = next((cmd.args[i + 1].text for i in range(3, len(cmd.args) - 1) if cmd.args[i].text in ("-f", "--config-file")), None)
        shown = f" and its config {config}" if config else ""
        w.notes.append(f"`dynamo serve {graph}` runs a service of a Dynamo SDK graph: its role and engine options come from the "
                       f"graph's code{shown}, which are not in this file")
    if cmd.program == UNKNOWN_WRAPPER:
        w.set_role("unknown", f"run by {cmd.args[0].text}, which the reader cannot follow", "none")
    if w.namespace is None:
        ns = w.known("namespace")
        w.namespace = str(ns) if ns is not None else None
    return w


def no_role_from_names(w: Worker) -> None:
    """Readers of CRDs and chart values decide roles from the fields their system reads: a role that came only from
    a name near the command (the worker's own name, a container's) is taken back."""
    if w.role_why.startswith("named "):
        w.role = "unknown" if w.settings.get("kv_connector") is not None else "aggregated"
        w.role_why = "no role in the command"


def workers_from_launches(launches: "list[Launch]", *, path: str, host_for, target: Target, labels: dict[str, str] | None = None,
                          name_for=None) -> list[Worker]:
    out = []
    for launch in launches:
        cmd = launch.command
        host = host_for(launch)
        name = name_for(launch) if name_for else f"{cmd.program} at line {cmd.start.line}"
        w = new_worker(cmd, path=path, name=name, host=host, hints=launch.hints, env=launch.env, target=target, image=launch.image,
                       labels=labels)
        w.alternative = launch.alternative
        w.epoch = launch.epoch
        if launch.note:
            w.notes.append(launch.note)
        out.append(w)
    return out


# --- YAML scalars with per-character positions -------------------------------------------------------------------


def scalar_offsets(doc: SourceDocument, path: tuple, content: str) -> list[int]:
    """Absolute offset in the file of each character of a YAML string value.

    Aligns the value with the file text between its marks: every non-space character maps to the next equal character
    there (escapes and folding skip over), a space to the character after the previous one. Exact for plain, quoted,
    literal and folded scalars as people write them."""
    p = doc.marks.value(path)
    starts = _line_starts(doc)
    lo = starts[p.line - 1] + p.column - 1 if p.line - 1 < len(starts) else 0
    hi = starts[p.end_line - 1] + p.end_column - 1 if p.end_line - 1 < len(starts) else len(doc.text)
    text = doc.text
    out, j = [], lo
    for ch in content:
        if ch in " \n\t":
            out.append(-1 if not out or out[-1] < 0 else out[-1] + 1)
            continue
        k = text.find(ch, j, hi + 1)
        if k < 0:
            out.append(-1)
            continue
        out.append(k)
        j = k + 1
    return out


def _line_starts(doc: SourceDocument) -> list[int]:
    return doc.line_starts()


def scalar_arg(doc: SourceDocument, path: tuple, text: str, reader: "ShellReader", rewrite=None, env: dict[str, Arg] | None = None) -> Arg:
    """One argv item written as a YAML scalar, positioned character by character (`rewrite`: a same-length
    rewrite of the text, applied after positioning, such as a template's `{{ }}` made a run-time value; `env`: a
    Kubernetes container's env, from which its `$(VAR)` references are expanded)."""
    offs = scalar_offsets(doc, path, text)
    from ..shell import PStr

    text = rewrite(text) if rewrite else text
    if env is not None:
        text, offs = expand_k8s(text, offs, env)
    p = doc.marks.value(path)
    return reader.arg(PStr(text, offs), _line_starts(doc)[p.line - 1] + p.column - 1)


_K8S_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand_k8s(text: str, offs: list[int], env: dict[str, Arg]) -> tuple[str, list[int]]:
    """Kubernetes' own expansion of a container's command, args and env values (not a shell's): `$(VAR)` becomes the
    value of VAR from the container's env, `$$` becomes `$` (so `$$(VAR)` stays literal), and a reference to a
    variable that is not defined is left as written (which readers treat as unknown). Source: the Kubernetes API
    reference, core/v1 Container.command/args and EnvVar.value ("Variable references $(VAR_NAME) are expanded using
    the container's environment. If a variable cannot be resolved, the reference in the input string will be
    unchanged. Double $$ are reduced to a single $"); kubernetes/kubernetes third_party/forked/golang/expansion."""
    if "$" not in text:
        return text, offs
    out: list[str] = []
    out_offs: list[int] = []
    last = 0
    for m in _K8S_REF.finditer(text):
        out.append(text[last : m.start()])
        out_offs.extend(offs[last : m.start()])
        name = m.group(1)
        if name is None:  # $$
            out.append("$")
            out_offs.append(offs[m.start()] if m.start() < len(offs) else -1)
        elif name in env:
            value = env[name].text
            pos = [-1] * len(value)
            if value and m.start() < len(offs):
                pos[-1] = offs[min(m.end(), len(offs)) - 1]
                pos[0] = offs[m.start()]  # the value spans the reference
            out.append(value)
            out_offs.extend(pos)
        else:
            out.append(m.group())
            out_offs.extend(offs[m.start() : m.end()])
        last = m.end()
    out.append(text[last:])
    out_offs.extend(offs[last:])
    return "".join(out), out_offs


def _as_pstr(a: Arg, reader: "ShellReader"):
    """An argument as the shell reader's text, each character at its offset in the reader's file where known."""
    from ..shell import PStr

    if a.char_pos and len(a.char_pos) == len(a.text):
        return PStr(a.text, [reader.starts[line - 1] + col - 1 if 0 < line <= len(reader.starts) else -1 for line, col in a.char_pos])
    return PStr(a.text)


def container_launches(doc: SourceDocument, base: tuple, container: dict, env: dict[str, Arg], reader: "ShellReader",
                       image: str | None = None, default_shell: bool = False, keys: tuple[str, str] = ("command", "args"),
                       rewrite=None, key_base: dict[str, tuple] | None = None) -> "list[Launch]":
    """The serving processes a container (or DGD mainContainer, compose service) starts.

    `command` + `args` as argv; `sh -c SCRIPT` runs SCRIPT through the shell reader; a container that passes only
    `args` runs its image's entrypoint, inferred from the image and the flags (vLLM images: `vllm serve`)."""
    from ..shell import Launch

    def at(key: str) -> tuple:  # where the container's `key` is written (a patched container mixes two places)
        return (key_base or {}).get(key, base)

    words: list[Arg] = []
    origins: list[tuple[tuple, str]] = []  # where each word is written, and its text as written
    scripts: list[tuple[tuple, str]] = []
    cmd_key, args_key = keys
    k8s_env = env if keys == ("command", "args") else None  # Kubernetes expands $(VAR) in a container's command and args
    for key in keys:
        value = container.get(key)
        if isinstance(value, list):
            for i, v in enumerate(value):
                if isinstance(v, (str, int, float)):
                    words.append(scalar_arg(doc, at(key) + (key, i), str(v), reader, rewrite, env=k8s_env))
                    origins.append((at(key) + (key, i), str(v)))
        elif isinstance(value, str):
            scripts.append((at(key) + (key,), value))
    at_script = shell_script_at([w.text for w in words]) if words else None
    script_args: list | None = None
    if at_script is not None:
        # `sh -c SCRIPT`, `bash -lc SCRIPT`, `/bin/bash -c -- SCRIPT`: Kubernetes runs command + args as one argv, so the
        # script is the first word after the shell's options, in `command` or in `args`; the words after it are its
        # $0 and then its $1, $2, ... (bash(1): "-c ... If there are arguments after the string, the first argument is
        # assigned to $0 and any remaining arguments are assigned to the positional parameters")
        script_args = [_as_pstr(a, reader) for a in words[at_script + 2 :]]
        scripts, words = [origins[at_script]] + scripts, []
    elif len(words) == 2 and words[0].text.rsplit("/", 1)[-1] in SHELLS and re.fullmatch(r"-[A-Za-z]*c[A-Za-z]*", words[1].text):
        words = []  # `sh -c` with no script: nothing runs
    if default_shell and not container.get(cmd_key) and isinstance(container.get(args_key), list) and len(container[args_key]) == 1 \
            and isinstance(container[args_key][0], str) and " " in container[args_key][0].strip():
        # Dynamo's operator of the v1alpha1 era ran a `componentType: main` container's args with /bin/sh -c
        scripts, words = [(at(args_key) + (args_key, 0), container[args_key][0])], []
    launches: list[Launch] = []
    for path, text in scripts:
        offs = scalar_offsets(doc, path, text)
        text = rewrite(text) if rewrite else text
        if k8s_env is not None:  # `sh -c "..."`: Kubernetes expands $(VAR) before the shell runs the script
            text, offs = expand_k8s(text, offs, k8s_env)
        reader.base_env = env
        reader.workdir = str(container.get("workingDir", "") or "")
        launches.extend(reader.read(text, offs, script_args))
        script_args = None  # only the `-c` script takes them
    if words:
        workdir = str(container.get("workingDir", "") or "")
        in_dynamo = runs_dynamo(doc.text) or "backends/" in workdir  # a Dynamo backend's folder in its image
        cmd = find_command(words, workdir if in_dynamo else None)
        if cmd is None:
            cmd = _dynamo_ingress(words)
        if cmd is None and not container.get(cmd_key) and words:
            program = engine_from_image(image, words)
            if program is not None:
                flags, spans, positional = parse_flags(words)
                cmd = Command(program, words, flags, spans, positional, {}, words[0].span)
        if cmd is not None:
            launches.append(Launch(cmd, [], dict(env)))
    return launches


def _dynamo_ingress(words: list[Arg]) -> Command | None:
    """The `dynamo run in=http out=dyn` frontend of Dynamo's 0.3-0.4 development images (their component scripts are
    `cmdline.dynamo_component`)."""
    texts = [a.text for a in words]
    if len(texts) >= 3 and texts[0] == "dynamo" and texts[1] == "run" and "in=http" in texts:
        flags, spans, positional = parse_flags(words[2:])
        return Command("dynamo.frontend", words, flags, spans, positional, {}, words[0].span)
    return None


def env_from_k8s(doc: SourceDocument, base: tuple, env: Any) -> dict[str, Arg]:
    """Container `env:` (list of name/value, or valueFrom) and compose `environment:` (list or mapping)."""
    out: dict[str, Arg] = {}

    def at(path: tuple, text: str) -> Arg:
        p = doc.marks.value(path)
        return Arg(text, Span(p.line, p.column, p.end_line, p.end_column), ())

    if isinstance(env, list):
        for i, item in enumerate(env):
            if isinstance(item, dict) and "name" in item and "value" in item:
                # a Kubernetes env value may use the variables defined before it: $(VAR) (see expand_k8s)
                raw = "" if item["value"] is None else str(item["value"])
                text, _ = expand_k8s(raw, [-1] * len(raw), out)
                out[str(item["name"])] = at(base + (i, "value"), text)
            elif isinstance(item, dict) and "name" in item and isinstance(item.get("valueFrom"), dict):
                ref = item["valueFrom"].get("fieldRef")
                field = ref.get("fieldPath", "ref") if isinstance(ref, dict) else "ref"
                out[str(item["name"])] = at(base + (i, "valueFrom"), f"$(valueFrom:{field})")
            elif isinstance(item, str) and "=" in item:
                name, _, value = item.partition("=")
                a = at(base + (i,), value)
                line = doc.line_text(a.span.line)
                k = line.find(item, a.span.column - 1) if a.span.line == a.span.end_line else -1
                if k >= 0:  # compose's `- NAME=value`: the value's own columns, where the item is written plainly
                    start = k + len(name) + 2
                    a = Arg(value, Span(a.span.line, start, a.span.line, start + len(value)), ())
                out[name] = a
    elif isinstance(env, dict):
        for name, value in env.items():
            out[str(name)] = at(base + (name,), str(value))
    return out


def gpus_from_resources(doc: SourceDocument, base: tuple, resources: Any) -> Setting:
    if not isinstance(resources, dict):
        return Setting(None, None, "unset")
    for section in ("limits", "requests"):
        lim = resources.get(section)
        if isinstance(lim, dict):
            for key in ("nvidia.com/gpu", "gpu", "amd.com/gpu"):
                if key in lim:
                    p = doc.marks.value(base + (section, key))
                    span = Span(p.line, p.column, p.end_line, p.end_column)
                    n = engines.as_int(lim[key])
                    return Setting(n if n is not None else Unknown(f"{key}: {lim[key]}"), span, f"resources.{section}")
    return Setting(None, None, "unset")


def rdma_requested(resources: Any) -> bool:
    if not isinstance(resources, dict):
        return False
    keys = [k for sec in ("limits", "requests") if isinstance(resources.get(sec), dict) for k in resources[sec]]
    return any("rdma" in str(k).lower() or "/hca" in str(k).lower() or "infiniband" in str(k).lower() for k in keys)


def count(value: Any) -> int | Unknown:
    if value is None:
        return 1
    n = engines.as_int(value)
    return n if n is not None and n >= 0 else Unknown(f"replicas {value!r}")


def span_of(doc: SourceDocument, path: tuple, at: str = "key") -> Span:
    return doc.marks.key(path) if at == "key" else doc.marks.value(path)


def env_files_unknown(w, names: list[str], key_name: str) -> None:
    """Files of variables that the file names but does not hold (compose `env_file`, ECS `environmentFiles`): each
    setting the doctor reads from the environment that neither the written environment nor the command sets is
    Unknown, not unset."""
    if not names:
        return
    for var, key in engines.ENV_SETTINGS.items():
        if key not in w.settings and var not in w.env:
            w.settings[key] = Setting(Unknown(f"{var} may be set by {key_name} {', '.join(names)}, which is not read"), None, key_name)

