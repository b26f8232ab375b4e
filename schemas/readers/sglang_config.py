"""SGLang's server-argument files: the YAML that `python -m sglang.launch_server --config FILE.yaml` (and
`python -m dynamo.sglang --config FILE.yaml`) turns into command-line flags before parsing them.

What SGLang does with the file (sgl-project/sglang@03bd2f167a3bc5a040d9cbb8343ac77adb3db53f
python/sglang/srt/server_args_config_parser.py, ConfigArgumentMerger; the same at
sgl-project/sglang@06c48ca8da0b2c8aac15df74a768e6a012444064, with `boolean_actions`): the top level must be a mapping;
each key becomes `--KEY` exactly as written (no `_` to `-` conversion: a key is a flag of ServerArgs.add_cli_args or
argparse rejects it); a `true` store_true flag becomes the bare flag and `false` adds nothing; a list becomes the flag
then each item; anything else `--KEY str(value)`. The file's arguments go first and the command line's after them, so
argparse keeps the command line's value of a flag given twice: "CLI > Config > Defaults". `prepare_server_args` runs
the merger when `--config` is on the command line; Dynamo's SGLang worker merges the same file into SGLang's own
parser (ai-dynamo/dynamo `components/src/dynamo/sglang/args.py`: `ConfigArgumentMerger(parser=sglang_only_parser)`).
`--config` is a flag of sglang 0.5.3 on (schemas/knowledge/generated/sglang.json).

Recognised by what the file declares, never by its name: a mapping whose every key is a flag that SGLang's ServerArgs
defines in some release we have read (generated sglang.json), with at least one key that no vLLM release defines,
as an engine or an OpenAI-server flag (vLLM's `--config` reads YAML of its own flags the same way, and a file of keys
both share says nothing of which engine reads it). Read alone, it is one SGLang server with these flags, its role from `disaggregation-mode`; the
command line that reads it is not in the file, so what that line adds (the model, any other flag) is unknown. Where
that command line is in the run (`--config PATH` naming this file), the file's flags join that worker (`link`).
"""

from __future__ import annotations

import json
import os
from functools import cache
from typing import Any, NamedTuple

from ..cmdline import Arg, find_command
from ..knowledge.versions import Target
from ..model import Deployment, Host, Setting, Unknown, Worker
from ..source import SourceDocument, Span
from .common import new_worker

SOURCE = "sgl-project/sglang@03bd2f1 python/sglang/srt/server_args_config_parser.py"
FORMAT = "sglang-config"


# vLLM's OpenAI server flags, which the generated vllm.json (engine arguments) does not hold: those of its
# FrontendArgs / BaseFrontendArgs (vllm-project/vllm@005223338608bc94fd165a4f976c102a57bd1fc4
# vllm/entrypoints/openai/cli_args.py), each also a key vLLM's `--config` YAML may hold
_VLLM_FRONTEND = frozenset("""
    host port uds uvicorn-log-level disable-uvicorn-access-log disable-access-log-for-endpoints allow-credentials allowed-origins
    allowed-methods allowed-headers api-key ssl-keyfile ssl-certfile ssl-ca-certs enable-ssl-refresh ssl-cert-reqs ssl-ciphers
    root-path middleware enable-request-id-headers disable-fastapi-docs h11-max-incomplete-event-size h11-max-header-count
    enable-offline-docs lora-modules chat-template chat-template-content-format trust-request-chat-template
    default-chat-template-kwargs response-role return-tokens-as-token-ids enable-auto-tool-choice exclude-tools-when-tool-choice-none
    tool-call-parser tool-parser-plugin tool-server log-config-file max-log-len enable-prompt-tokens-details
    enable-per-request-metrics enable-server-load-tracking enable-force-include-usage enable-tokenizer-info-endpoint
    enable-log-outputs enable-log-deltas log-error-stack tokens-only
""".split())


@cache
def _flags(system: str) -> frozenset[str]:
    from ..knowledge import flags_defined, known_releases

    return frozenset(f[2:] for f in flags_defined(system, system, frozenset(known_releases()[system])))


def looks_like_server_args(data: Any) -> bool:
    if not isinstance(data, dict) or not data or not all(isinstance(k, str) for k in data):
        return False
    sglang = _flags("sglang")
    if not all(k in sglang for k in data):
        return False
    return any(k not in _flags("vllm") and k not in _VLLM_FRONTEND for k in data)


class Offer(NamedTuple):
    """A server-argument file read alone: its worker, which a `--config` naming this file takes over (`link`)."""

    dep: Deployment
    worker: Worker


class ConfigRef(NamedTuple):
    """An SGLang worker whose command line reads `path` with `--config`."""

    worker: Worker
    path: str


def read(doc: SourceDocument, dep: Deployment, target: Target) -> None:
    dep.format = FORMAT
    words = [Arg(w, Span(*doc.marks.key((next(iter(doc.data)),)))) for w in ("python3", "-m", "sglang.launch_server")]
    for key, value in doc.data.items():
        words += _flag(doc, (key,), key, value)
    cmd = find_command(words)
    if cmd is None:
        return
    name = os.path.basename(doc.path)
    host = Host("unknown", f"the server that reads {name}", f"sglang-config:{doc.path}")
    # named for what it is, not for its file: a role is the file's `disaggregation-mode`, never a word of its name
    w = new_worker(cmd, path=doc.path, name="SGLang server args", host=host, hints=[], env={}, target=target)
    w.span = cmd.args[3].span if len(cmd.args) > 3 else w.span
    reader = "the command line that reads it with --config (sglang or dynamo.sglang), not in this run"
    w.settings["opaque_args"] = Setting(Unknown(f"{reader}: its flags come after the file's and win ({SOURCE})"), None, "arguments from a file")
    w.notes.append(f"read as SGLang server arguments ({SOURCE}); the model and any other flag come from {reader}")
    dep.workers.append(w)
    dep.links.append(Offer(dep, w))


def _flag(doc: SourceDocument, path: tuple, key: str, value: Any) -> list[Arg]:
    """ConfigArgumentMerger._convert_config_to_args for one key, each word at the key or value it comes from."""
    flag = Arg(f"--{key}", Span(*doc.marks.key(path)))
    if isinstance(value, bool):
        return [flag] if value else []
    if isinstance(value, list):
        return [flag] + [_value(doc, path + (i,), v) for i, v in enumerate(value)] if value else []
    return [flag, _value(doc, path, value)]


def _value(doc: SourceDocument, path: tuple, value: Any) -> Arg:
    span = Span(*doc.marks.value(path))
    if isinstance(value, dict):
        return Arg(json.dumps(value), span)  # the newer merger passes a mapping as JSON (older ones str(), which no flag parses)
    return Arg(str(value), span)


def config_refs(dep: Deployment) -> None:
    """Note each SGLang worker of `dep` that reads a server-argument file with `--config` (engines.py keeps the path
    under `extra_engine_args`), so that `link` can find that file among the run's."""
    for w in dep.workers:
        s = w.settings.get("extra_engine_args")
        if w.engine == "sglang" and s is not None and s.origin == "--config" and s.known and isinstance(s.value, str) and "$" not in s.value:
            dep.links.append(ConfigRef(w, s.value))


def link(deps: list[Deployment]) -> None:
    """Give each `--config PATH` worker the flags of the run's file at PATH: the command line's own flags win (they come
    later), the file's worker is taken out of its file (it is this worker), and the file's flags are placed at the
    command line, each saying where it is written."""
    offers = [o for d in deps for o in d.links if isinstance(o, Offer)]
    if not offers:
        return
    for dep in deps:
        for ref in [r for r in dep.links if isinstance(r, ConfigRef)]:
            found = _named(ref, offers)
            if found is None or found.worker not in found.dep.workers:
                continue
            _merge(ref.worker, found.worker, ref.path)
            found.dep.workers.remove(found.worker)
            found.dep.links.remove(found)
            dep.links.remove(ref)


def _named(ref: ConfigRef, offers: list[Offer]) -> Offer | None:
    """The file the path names: relative to the referencing file's folder, else the one file of the run whose path ends
    with the path's parts (the command's working folder is not in the file); None when that is not one file."""
    here = os.path.normpath(os.path.join(os.path.dirname(ref.worker.path), ref.path))
    exact = [o for o in offers if os.path.normpath(o.dep.path) == here]
    if len(exact) == 1:
        return exact[0]
    parts = [p for p in os.path.normpath(ref.path).split(os.sep) if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    tail = [o for o in offers if os.path.normpath(o.dep.path).split(os.sep)[-len(parts):] == parts]
    return tail[0] if len(tail) == 1 else None


def _merge(w: Worker, cfg: Worker, path: str) -> None:
    where = f"{path}, read by --config"

    def moved(s: Setting) -> Setting:
        return Setting(s.value, None, f"{s.origin} in {where}")

    for k, s in cfg.flags.items():
        w.flags.setdefault(k, moved(s))
    for k, s in cfg.settings.items():
        if k != "opaque_args":
            w.settings.setdefault(k, moved(s))
    opaque = w.settings.get("opaque_args")
    if opaque is not None and not opaque.known and opaque.value.unread_file is not None:
        del w.settings["opaque_args"]  # the arguments were unknown for want of the --config file, which is read now
    if cfg.role in ("prefill", "decode") and w.role_from in ("name", "none", "default"):
        w.set_role(cfg.role, f"{cfg.role_why} in {where}", cfg.role_from)
    w.notes[:] = [n for n in w.notes if not n.startswith(f"engine settings are in {path},")]
    w.notes.append(f"its --config file {path} is in this run: its flags are read, the command line's win")
