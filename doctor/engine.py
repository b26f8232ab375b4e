"""Run the rules over files: read every file into the deployment model, pair prefill with decode within and across
files, check, filter by selection and `# disagg: noqa`, sort. A cross-file finding is reported at both ends."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from disagg.schemas import knowledge, pairing
from disagg.schemas.model import Deployment, Pair
from disagg.schemas.readers import SERVING_MARKERS, is_script, link_files, read_script, read_yaml, unread_kinds
from disagg.schemas.source import ConfigError, decode_text, noqa_codes

from .context import LintContext, LintOptions
from .finding import Finding, Related
from .registry import Rule, matches

YAML_SUFFIXES = (".yaml", ".yml")
SCRIPT_SUFFIXES = (".sh", ".bash")
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

    @property
    def parse(self):
        """The deployment, for callers that only ask whether a config was read (the live doctor)."""
        return self.deployment


def collect_paths(targets: Sequence[str], exclude: Sequence[str] = ()) -> list[tuple[str, bool]]:
    """(path, named explicitly) for each target; folders are searched for *.yaml / *.yml / *.sh."""
    out: list[tuple[str, bool]] = []
    for target in targets:
        if target != STDIN and os.path.isdir(target):
            found = []
            for root, dirs, files in os.walk(target):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in ("node_modules", "__pycache__", ".venv", "venv")
                                 and not _excluded(os.path.join(root, d), exclude))
                for f in files:
                    p = os.path.join(root, f)
                    if f.endswith(YAML_SUFFIXES + SCRIPT_SUFFIXES) and not f.startswith(".") and not _excluded(p, exclude):
                        found.append(p)
            out.extend((p, False) for p in sorted(found))
        else:
            out.append((target, True))
    return out


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
    result = FileResult(path=path)
    result.source_lines = text.splitlines()
    target = knowledge.new_target(options.target)
    try:
        if is_script(path, text, fmt):
            dep = read_script(path, text, target)
            if not dep.workers:
                return _not_a_config(result, explicit, "no serving command found (vllm serve, python -m dynamo.vllm, python -m sglang.launch_server, ...)")
        else:
            dep = read_yaml(path, text, target, fmt)
            if dep is None:
                kinds = unread_kinds(path, text)
                if kinds:  # Kubernetes objects of kinds no reader reads: listed under --verbose, never an error
                    result.skipped = "not a serving config I know: " + ", ".join(kinds)
                    return result
                return _not_a_config(result, explicit, _why_not(path, text))
        if not dep.workers and not dep.router and not dep.links and not dep.issues:
            # Read, but nothing in it runs or routes a model (a web app's compose file): no serving config, never "no pair formed"
            result.skipped = f"not a serving config: read as {dep.format}, but no service or container runs an engine the doctor reads (vllm serve, dynamo, sglang, trtllm-serve, ...)"
            return result
    except ConfigError as exc:
        if not explicit and not SERVING_MARKERS.search(text):
            result.skipped = f"not a serving config ({exc.message})"
            return result
        result.error = exc
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


def _not_a_config(result: FileResult, explicit: bool, message: str | ConfigError) -> FileResult:
    if explicit:
        result.error = message if isinstance(message, ConfigError) else ConfigError(result.path, 1, 1, message)
    else:
        result.skipped = f"not a disaggregated-serving config: {message.message if isinstance(message, ConfigError) else message}"
    return result


def lint_results(results: list[FileResult], rules: Iterable[type[Rule]], options: LintOptions, cross_files: bool = True) -> list[FileResult]:
    """Pair, check and sort the findings of files already read (`cross_files=False`: each file on its own)."""
    static = [r for r in rules if not r.live]
    deps = [r.deployment for r in results if r.deployment is not None]
    link_files(deps)
    own = {id(d): pairing.within(d) for d in deps}
    paired = {id(w) for ps in own.values() for p in ps for w in p.ends()}
    cross = pairing.across(deps, paired) if cross_files else []
    by_path: dict[str, list[Finding]] = {}
    for r in results:
        dep = r.deployment
        if dep is None:
            continue
        pairs = own[id(dep)] + [p for p in cross if p.prefill.path == dep.path]
        r.pairs = own[id(dep)] + [p for p in cross if dep.path in (p.prefill.path, p.decode.path)]
        ctx = LintContext(dep, options, pairs, r.pairs)
        for rule in static:
            for f in rule().check(ctx):
                by_path.setdefault(f.path, []).append(f)
                if f.related and f.related[0].path != f.path:  # a cross-file finding: report it at the other end too
                    rel = f.related[0]
                    back = Related(f.path, f.line, f.column, f.end_line, f.end_column, "the other end of this pair")
                    by_path.setdefault(rel.path, []).append(f._replace(path=rel.path, line=rel.line, column=rel.column, end_line=rel.end_line,
                                                                       end_column=rel.end_column, related=(back,)))
        if options.workload is not None:
            r.prediction = _prediction(dep, options)
    for r in results:
        found = by_path.get(r.path, [])
        unique = {(f.code, f.line, f.column, f.message): f for f in _unsuppressed(found, r.source_lines)}
        r.findings = sorted(unique.values(), key=lambda f: (f.line, f.column, f.code, f.message))
    return results


def _prediction(dep: Deployment, options: LintOptions):
    from .rules._helpers import routing_policy, v0_decode
    from .workload import predict

    dec = v0_decode(dep)
    if dec is None:
        return None
    return predict(routing_policy(dec), options.workload, prefill_workers_alive=bool(dep.of_role("prefill")))


def _unsuppressed(findings: list[Finding], lines: list[str]) -> Iterable[Finding]:
    for f in findings:
        codes = noqa_codes(lines[f.line - 1]) if 0 < f.line <= len(lines) else None
        if codes is None or not any(matches(f.code, c, exact=c != "ALL" and len(c) >= 5) for c in codes):
            yield f


def lint_text(path: str, text: str, rules: Iterable[type[Rule]], options: LintOptions, explicit: bool = True, fmt: str = "auto") -> FileResult:
    """One file, read and checked on its own (tests, the live doctor, stdin)."""
    result = read_file(path, text, options, explicit, fmt)
    return lint_results([result], rules, options)[0]


PARALLEL_MIN_FILES = 64  # below this, starting processes costs more than it saves


def lint_paths(targets: Sequence[str], rules: list[type[Rule]], options: LintOptions, exclude: Sequence[str] = (), stdin_bytes: bytes | None = None,
               fmt: str = "auto", skip_unrecognized: bool = False, partner_search: bool = False) -> list[FileResult]:
    """`partner_search`: read the other side of a pair the files given leave out from their folder (partners.py)."""
    items = [(path, explicit and not skip_unrecognized) for path, explicit in collect_paths(targets, exclude)]
    if len(items) >= PARALLEL_MIN_FILES and (os.cpu_count() or 1) > 1 and STDIN not in targets:
        from .parallel import lint_in_processes

        return lint_in_processes(items, rules, options, fmt)
    results = [_read(path, explicit, options, fmt, stdin_bytes) for path, explicit in items]
    if partner_search:
        from .partners import search_partners

        lint_results(results + search_partners(results, options, fmt), rules, options)
        return results  # the partners found are checked with them, but only the files given are reported
    return lint_results(results, rules, options)


def _read(path: str, explicit: bool, options: LintOptions, fmt: str, stdin_bytes: bytes | None = None) -> FileResult:
    try:
        text = read_target(path, stdin_bytes)
    except ConfigError as exc:
        return FileResult(path=exc.path, error=exc)
    return read_file("<stdin>" if path == STDIN else path, text, options, explicit, fmt)
