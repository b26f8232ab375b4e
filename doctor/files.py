"""Files into deployments: find the configs under the targets, read each (or stdin) and parse it into the deployment
model. A reader that raises on one file is contained to that file (an internal error, exit code 3)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from disagg.schemas import knowledge
from disagg.schemas.formats import JOB_SCRIPT_SUFFIXES, SCRIPT_SUFFIXES, YAML_SUFFIXES, is_justfile, shell_shebang, untemplated
from disagg.schemas.gcpause import paused_gc
from disagg.schemas.model import Deployment, Pair
from disagg.schemas.readers import SERVING_MARKERS, is_script, read_script, read_yaml, unread_kinds
from disagg.schemas.source import ConfigError, decode_text

from .context import LintOptions
from .finding import Finding, crash_summary

JSON_SUFFIXES = (".json",)
STDIN = "-"


class FileResult:
    def __init__(self, path: str, error: ConfigError | None = None):
        self.path = path
        self.findings: list[Finding] = []
        self.error = error
        self.skipped: str | None = None  # why a file was not linted (not a serving config)
        self.prediction = None  # workload.Prediction with --workload
        self.source_lines: list[str] = []
        self.deployment: Deployment | None = None
        self.pairs: list[Pair] = []  # prefill/decode pairs with an end in this file
        self.crashed = False  # the reader raised on this file (a bug in disagg): `error` says where and what
        self.crashes: list[str] = []  # a later stage that raised on this file (pairing, the workload prediction), in words

    @property
    def internal_error(self) -> bool:
        """A reader, a stage or a rule raised on this file: what is reported is incomplete (exit code 3)."""
        return self.crashed or bool(self.crashes) or any(f.internal for f in self.findings)

    @property
    def parse(self):
        """The deployment, for callers that only ask whether a config was read (the live doctor)."""
        return self.deployment


def collect_paths(targets: Sequence[str], exclude: Sequence[str] = ()) -> list[tuple[str, bool]]:
    """(path, named explicitly) for each target; folders are searched for *.yaml / *.yml / *.sh / *.bash, Justfiles
    (`Justfile`, `justfile`, `*.just`), Slurm job scripts that run a shell (*.slurm / *.sbatch) and the *.json files that are serving configs (`takes`), dot-folders included
    (CI's), but not NO_CONFIG_FOLDERS."""
    out: list[tuple[str, bool]] = []
    for target in targets:
        if target != STDIN and os.path.isdir(target):
            found = []
            for root, dirs, files in os.walk(target):
                dirs[:] = sorted(d for d in dirs if not _holds_no_config(root, d) and not _excluded(os.path.join(root, d), exclude))
                for f in files:
                    p = os.path.join(root, f)
                    if takes(p) and not _excluded(p, exclude):
                        found.append(p)
            out.extend((p, False) for p in sorted(found))
        else:
            out.append((target, True))
    return out


def takes(path: str) -> bool:
    """Whether a folder search reads this file: YAML, shell scripts and Justfiles by name; a Slurm job script when its
    `#!` line names a shell; a JSON file only when it is
    a serving config of a form the doctor reads (`json_config`), so that package.json, tsconfig.json, lock files and
    data sets are passed over in silence."""
    name = os.path.basename(path)
    if name.startswith("."):
        return False
    if name.endswith(YAML_SUFFIXES + SCRIPT_SUFFIXES) or is_justfile(name):
        return True
    if untemplated(name) is not None:  # a Jinja template of a YAML file or a script (readers/jinja.py)
        return True
    if name.endswith(JOB_SCRIPT_SUFFIXES):
        return _first_line_runs_a_shell(path)
    return name.endswith(JSON_SUFFIXES) and json_config(path)


def _first_line_runs_a_shell(path: str) -> bool:
    """A Slurm job script (*.slurm, *.sbatch) whose `#!` line names a shell: sbatch runs it as that shell's script."""
    try:
        with open(path, "rb") as handle:
            first = handle.readline(512)
    except OSError:
        return False
    return shell_shebang(first.decode("utf-8", "replace").lstrip("\ufeff").rstrip())


# A JSON file larger than this is data, not a deployment manifest or task definition: a folder search does not parse it
JSON_PEEK_BYTES = 4 * 1024 * 1024


def json_config(path: str) -> bool:
    """A JSON file that declares a form the doctor reads: a Kubernetes object (`apiVersion` and `kind` at its top
    level; JSON is YAML, so `kubectl apply -f x.json` reads it as it reads YAML) or an AWS ECS task definition
    (readers/ecs.py). Anything else a folder search finds under .json is no serving config of ours."""
    import json

    try:
        if os.path.getsize(path) > JSON_PEEK_BYTES:
            return False
        with open(path, "rb") as handle:
            raw = handle.read()
        head = raw[:65536]
        if b'"apiVersion"' not in head and b'"containerDefinitions"' not in raw:
            return False  # cheap: neither form can be in it
        data = json.loads(raw.decode("utf-8-sig"))
    except (OSError, ValueError, RecursionError):
        return False
    from disagg.schemas.formats import kube_object
    from disagg.schemas.readers.ecs import looks_like_task_definition

    return kube_object(data) or looks_like_task_definition(data)


# Folders a folder search never enters: version control, caches and installed packages that hold no config of the
# user's. Other dot-folders are entered: CI keeps its serving configs and launchers under `.buildkite/`, `.ci/`,
# `.github/`, `.gitlab/`. A virtual environment under any name is known by its `pyvenv.cfg` (PEP 405).
NO_CONFIG_FOLDERS = frozenset({
    ".git", ".hg", ".svn", ".bzr", ".jj",  # version control
    ".venv", "venv", ".tox", ".nox", ".eggs", "node_modules", "site-packages",  # installed packages
    "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis", ".ipynb_checkpoints", ".cache",  # caches
    ".terraform", ".terragrunt-cache", ".idea", ".vscode", ".direnv",  # tool state
})


def _holds_no_config(root: str, name: str) -> bool:
    return name in NO_CONFIG_FOLDERS or name.endswith(".egg-info") or os.path.isfile(os.path.join(root, name, "pyvenv.cfg"))


def _excluded(path: str, patterns: Sequence[str]) -> bool:
    from fnmatch import fnmatch

    return any(fnmatch(os.path.basename(path), pat) or fnmatch(path, pat) for pat in patterns)


def read_target(path: str, stdin_bytes: bytes | None = None) -> str:
    """The text of a file (or stdin), or a ConfigError that says why it cannot be read."""
    if path == STDIN:
        return decode_text("<stdin>", stdin_bytes or b"")
    try:
        with open(path, "rb") as handle:
            raw = handle.read(64 * 1024 * 1024 + 1)
    except FileNotFoundError:
        raise ConfigError(path, 1, 1, "no such file") from None
    except IsADirectoryError:
        raise ConfigError(path, 1, 1, "is a directory") from None
    except OSError as exc:
        raise ConfigError(path, 1, 1, f"cannot read: {exc.strerror}") from None
    return decode_text(path, raw)


def read_file(path: str, text: str, options: LintOptions, explicit: bool = True, fmt: str = "auto") -> FileResult:
    """Read one file into a deployment (no rules yet). Someone else's YAML is skipped, or an error when named and
    `explicit`: a file counts as a serving config when it parses into workers, or (when it does not parse) when its
    text holds words that only serving configs use."""
    with paused_gc():
        return _read_file(path, text, options, explicit, fmt)


def _read_file(path: str, text: str, options: LintOptions, explicit: bool, fmt: str) -> FileResult:
    result = FileResult(path=path)
    result.source_lines = text.splitlines()
    target = knowledge.new_target(options.target)
    try:
        rendered = untemplated(path) if fmt == "auto" else None
        if rendered is not None:
            from disagg.schemas.readers.jinja import read_template

            dep = read_template(path, rendered, text, target)
            if dep is None:
                return _not_a_config(result, explicit, "a Jinja template of no serving config the doctor reads")
        elif is_script(path, text, fmt):
            dep = read_script(path, text, target)
            if not dep.workers and not dep.parts:  # parts: configs of manifests the script applies (readers/applied.py)
                return _not_a_config(result, explicit, _no_serving_command(path, dep))
        else:
            dep = read_yaml(path, text, target, fmt)
            if dep is None:
                kinds = unread_kinds(path, text)
                if kinds:  # Kubernetes objects of kinds no reader reads: listed under --verbose, never an error
                    result.skipped = "not a serving config I know: " + ", ".join(kinds)
                    return result
                return _not_a_config(result, explicit, _why_not(path, text))
    except ConfigError as exc:
        if not explicit and not SERVING_MARKERS.search(text):
            result.skipped = f"not a serving config ({exc.message})"
            return result
        result.error = exc
        return result
    except RecursionError:
        result.error = ConfigError(path, 1, 1, "nested too deeply to read")
        return result
    except Exception as exc:  # noqa: BLE001 - a reader bug: contained to this file, reported as an internal error
        result.crashed = True
        result.error = ConfigError(path, 1, 1, f"internal error: the reader raised {crash_summary(exc)}; the other files were checked "
                                   "(a bug in disagg: please report it with this file)")
        return result
    if not dep.workers and not dep.router and not dep.links and not dep.issues and not any(p.workers for p in dep.parts):
        # Read, but nothing in it runs or routes a model (a web app's compose file): no serving config, never "no pair formed"
        result.skipped = f"not a serving config: read as {dep.format}, but no service or container runs an engine the doctor reads (vllm serve, dynamo, sglang, trtllm-serve, ...)"
        return result
    result.deployment = dep
    return result


def _why_not(path: str, text: str) -> str | ConfigError:
    """Why a YAML file that parsed is no config we read, located when the top level says so."""
    from disagg.schemas.source import load_documents

    docs = load_documents(path, text)
    if not docs:
        return "empty document: expected Dynamo service sections such as VllmWorker, or a manifest"
    if not any(isinstance(d.data, dict) for d in docs):
        kind = "list" if isinstance(docs[0].data, list) else type(docs[0].data).__name__
        p = docs[0].marks.value(())
        return ConfigError(path, p.line, p.column, f"the top level must be a mapping of service sections (or a manifest), got a {kind}")
    from disagg.schemas.config import v0_near_misses

    misses = v0_near_misses(docs[0].data) if len(docs) == 1 else []
    if misses:
        key, hint = misses[0]
        p = docs[0].marks.key((key,))
        return ConfigError(path, p.line, p.column, f"not a recognised config: {key!r} is no Dynamo v0 service section (did you mean {hint!r}?)")
    return "not a recognised config: no Dynamo service sections, no serving command in a manifest, compose file, Helm values or llm-d config"


def _no_serving_command(path: str, dep) -> str | ConfigError:
    """Why a script holds no serving process: none is in it, or the only candidates are scripts it runs, whose code
    (and the role they give what they start) is not in this file."""
    runs = [i for i in dep.issues if i.kind == "runs_script"]
    written = list(dict.fromkeys(i.message for i in dep.issues if i.kind == "writes_serving_script"))
    if written:
        at = next(i.span for i in dep.issues if i.kind == "writes_serving_script")
        return ConfigError(path, at.line, at.column,
                           f"no serving command run by this file itself: the ones it holds are in scripts it writes ({', '.join(written)}), "
                           "which start only when what this file runs runs them; that chain is not followed, so what runs, and in which role, "
                           "is not known here")
    if not runs:
        return "no serving command found (vllm serve, python -m dynamo.vllm, python -m sglang.launch_server, ...)"
    names = list(dict.fromkeys(i.message for i in runs))
    return ConfigError(path, runs[0].span.line, runs[0].span.column,
                       f"no serving command in this file: it runs {', '.join(names)}, whose code is not in it, so what "
                       f"{'they start' if len(names) > 1 else 'it starts'}, and in which role, is not known here")


def _not_a_config(result: FileResult, explicit: bool, message: str | ConfigError) -> FileResult:
    if explicit:
        result.error = message if isinstance(message, ConfigError) else ConfigError(result.path, 1, 1, message)
    else:
        result.skipped = f"not a disaggregated-serving config: {message.message if isinstance(message, ConfigError) else message}"
    return result


def read_path(path: str, explicit: bool, options: LintOptions, fmt: str, stdin_bytes: bytes | None = None) -> FileResult:
    try:
        text = read_target(path, stdin_bytes)
    except ConfigError as exc:
        return FileResult(path=exc.path, error=exc)
    return read_file("<stdin>" if path == STDIN else path, text, options, explicit, fmt)
