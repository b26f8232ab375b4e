"""Run the rules over files: read, parse, check, filter by selection and `# disagg: noqa`, sort."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from disagg.schemas.config import looks_like_dynamo_v0, parse_dynamo_v0
from disagg.schemas.source import ConfigError, decode_text, load_documents, noqa_codes

from .context import LintContext, LintOptions
from .finding import Finding
from .registry import Rule, matches
from .workload import Prediction, predict

YAML_SUFFIXES = (".yaml", ".yml")
SCRIPT_SUFFIXES = (".sh", ".bash")
FORMATS = ("auto", "dynamo-v0", "kubernetes", "compose", "llm-d", "script")
STDIN = "-"


class FileResult:
    def __init__(self, path: str, error: ConfigError | None = None):
        self.path = path
        self.findings: list[Finding] = []
        self.error = error
        self.skipped: str | None = None  # why a file found by a folder search was not linted
        self.prediction: Prediction | None = None
        self.source_lines: list[str] = []
        self.parse = None  # the parsed config, for the live doctor
        self.deployment = None  # the deployment read from a script, manifest or compose file


def collect_paths(targets: Sequence[str], exclude: Sequence[str] = ()) -> list[tuple[str, bool]]:
    """(path, named explicitly) for each target; folders are searched for *.yaml / *.yml."""
    out: list[tuple[str, bool]] = []
    for target in targets:
        if target != STDIN and os.path.isdir(target):
            found = []
            for root, dirs, files in os.walk(target):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not _excluded(os.path.join(root, d), exclude))
                for f in files:
                    p = os.path.join(root, f)
                    if f.endswith(YAML_SUFFIXES + SCRIPT_SUFFIXES) and not _excluded(p, exclude):
                        found.append(p)
            out.extend((p, False) for p in sorted(found))
        else:
            out.append((target, True))
    return out


def _excluded(path: str, patterns: Sequence[str]) -> bool:
    from fnmatch import fnmatch

    p = Path(path)
    return any(fnmatch(p.name, pat) or fnmatch(str(p), pat) for pat in patterns)


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


def _is_script(path: str, text: str, fmt: str) -> bool:
    if fmt != "auto":
        return fmt == "script"
    return path.endswith(SCRIPT_SUFFIXES) or text.startswith("#!")


def lint_text(path: str, text: str, rules: Iterable[type[Rule]], options: LintOptions, explicit: bool = True, fmt: str = "auto") -> FileResult:
    result = FileResult(path=path)
    if _is_script(path, text, fmt):
        from disagg.schemas.deployment import from_script

        result.source_lines = text.splitlines()
        dep = from_script(path, text)
        if not dep.workers:
            if explicit:
                result.error = ConfigError(path, 1, 1, "no serving command found (vllm serve, python -m dynamo.vllm, python -m sglang.launch_server, ...)")
            else:
                result.skipped = "no serving command"
            return result
        return _lint_deployment(result, dep, rules, options)
    try:
        docs = load_documents(path, text)
        result.source_lines = docs[0].lines if docs else text.splitlines()
        if not docs:
            raise ConfigError(path, 1, 1, "empty document: expected Dynamo service sections such as VllmWorker")
        doc = docs[0]
        if not isinstance(doc.data, dict):
            kind = type(doc.data).__name__ if not isinstance(doc.data, list) else "list"
            raise ConfigError(path, doc.marks.value(()).line, doc.marks.value(()).column, f"the top level must be a mapping of service sections, got a {kind}")
        if fmt not in ("auto", "dynamo-v0") or not looks_like_dynamo_v0(doc.data):
            from disagg.schemas.deployment import from_yaml

            dep = from_yaml(path, [d for d in docs if isinstance(d.data, dict)]) if fmt != "dynamo-v0" else None
            if dep is not None and (dep.workers or dep.router):
                return _lint_deployment(result, dep, rules, options)
            if not explicit:
                result.skipped = "not a disaggregated-serving config"
                return result
            raise ConfigError(path, 1, 1, "not a recognised config: no Dynamo service sections, no serving command in a manifest, compose file or llm-d config")
        if len(docs) > 1:
            second = docs[1].marks.value(())
            raise ConfigError(path, second.line, second.column, "a Dynamo service config holds one YAML document; found a second")
    except ConfigError as exc:
        result.error = exc
        return result
    parse = parse_dynamo_v0(doc)
    result.parse = parse
    ctx = LintContext(parse=parse, options=options)
    findings = [f for rule in rules if not rule.live for f in rule().check(ctx)]
    result.findings = sorted(_unsuppressed(findings, doc.lines), key=lambda f: (f.line, f.column, f.code))
    if options.workload is not None:
        workers = parse.workers("PrefillWorker")
        result.prediction = predict(parse.routing_policy(), options.workload, prefill_workers_alive=workers > 0)
    return result


def _lint_deployment(result: FileResult, dep, rules, options: LintOptions) -> FileResult:
    ctx = LintContext(parse=None, options=options, deployment=dep)
    findings = [f for rule in rules if not rule.live for f in rule().check(ctx)]
    result.findings = sorted(_unsuppressed(findings, result.source_lines), key=lambda f: (f.line, f.column, f.code))
    result.deployment = dep
    return result


def _unsuppressed(findings: list[Finding], lines: list[str]) -> Iterable[Finding]:
    for f in findings:
        codes = noqa_codes(lines[f.line - 1]) if 0 < f.line <= len(lines) else None
        if codes is None or not any(matches(f.code, c) for c in codes):
            yield f


def lint_paths(targets: Sequence[str], rules: list[type[Rule]], options: LintOptions, exclude: Sequence[str] = (), stdin_bytes: bytes | None = None, fmt: str = "auto",
               skip_unrecognized: bool = False) -> list[FileResult]:
    results = []
    for path, explicit in collect_paths(targets, exclude):
        try:
            text = read_target(path, stdin_bytes)
        except ConfigError as exc:
            results.append(FileResult(path=exc.path, error=exc))
            continue
        results.append(lint_text("<stdin>" if path == STDIN else path, text, rules, options, explicit and not skip_unrecognized, fmt))
    return results

