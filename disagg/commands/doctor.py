"""`disagg doctor PATH...`: the static doctor (`--live` is in live.py)."""

from __future__ import annotations

import argparse
import os
import sys

from .common import EXIT_CLEAN, EXIT_ERROR, EXIT_FINDINGS, EXIT_INTERNAL, codes, err


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from disagg.doctor.context import LintOptions
    from disagg.doctor.engine import lint_paths, stream_paths
    from disagg.doctor.finding import Severity
    from disagg.doctor.output import open_report
    from disagg.doctor.registry import default_registry
    from disagg.doctor.settings import SettingsError, load_settings
    from disagg.doctor.workload import WorkloadError, parse_workload

    registry = default_registry()
    if args.explain:
        rule = registry.find(args.explain)
        if rule is None:
            return err(f"no rule {args.explain!r} (by code or name); `disagg rules` lists them")
        print(f"{rule.code} {rule.name} ({rule.severities()})\n\n{rule.doc()}")
        return EXIT_CLEAN
    try:
        settings = load_settings()
    except SettingsError as exc:
        return err(str(exc))
    if args.env:
        from .env import run as env

        return env(args, registry)
    if args.emit_alerts:
        from .alerts import run as emit_alerts

        return emit_alerts(args)
    if args.live:
        from .live import run as live

        return live(args, registry)
    if not args.paths:
        return err("no config given: disagg doctor PATH... (or - for stdin)")

    select = codes(args.select) or settings.get("select", ["ALL"])
    extend = settings.get("extend-select", []) + codes(args.extend_select)
    ignore = settings.get("ignore", []) + codes(args.ignore)
    for selector in [*select, *extend, *ignore]:
        if not registry.check_selector(selector):
            return err(f"unknown rule selector {selector!r}; `disagg rules` lists the codes")
    rules = registry.select(select, ignore, extend)
    fmt = args.output_format or settings.get("output-format", "text")
    if fmt not in ("text", "json", "sarif", "github", "junit"):
        return err(f"unknown output format {fmt!r} in {settings.source}")
    try:
        fail_level = Severity.parse(args.fail_level or settings.get("fail-level", "warning"))
    except ValueError as exc:
        return err(str(exc))
    workload = None
    spec = args.workload or settings.get("workload")
    if spec:
        try:
            workload = parse_workload(spec)
        except WorkloadError as exc:
            return err(str(exc))
    gpus = args.gpus if args.gpus is not None else settings.get("gpus")
    if gpus is not None and gpus < 0:
        return err("--gpus must be >= 0")

    try:
        target = parse_target(args.target_version or settings.get("target-version", ""))
    except ValueError as exc:
        return err(str(exc))
    unsafe = args.unsafe_fixes or bool(settings.get("unsafe-fixes", False))

    stdin_bytes = sys.stdin.buffer.read() if "-" in args.paths else None
    options = LintOptions(gpus=gpus, workload=workload, target=target)
    exclude = settings.get("exclude", []) + (args.exclude or [])
    how = dict(exclude=exclude, stdin_bytes=stdin_bytes, fmt=args.format, skip_unrecognized=args.skip_unrecognized, partner_search=not args.no_partner_search)
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty() and "NO_COLOR" not in os.environ)
    if args.fix or args.require_files:  # both need every result before anything is printed
        results = lint_paths(args.paths, rules, options, **how)
        if args.fix and fixed(results, unsafe):
            results = lint_paths(args.paths, rules, options, **how)
        if args.require_files and not any(not r.skipped for r in results):
            return err("no config files found in " + ", ".join(args.paths))
        given, events = {r.path for r in results}, (("file", r) for r in results)
    else:  # each file's part of the report is printed as soon as the file is checked, and then dropped (issue 23)
        given, events = stream_paths(args.paths, rules, options, **how)
    out = _Stdout()
    report = open_report(fmt, out, registry, given, color=color, verbose=args.verbose)
    report.feed(events)
    if out.written:
        out.write("\n")
    tally = report.tally
    if tally.internal_error:
        return EXIT_INTERNAL  # even with --exit-zero (as ruff's 2): the report is incomplete
    if tally.errors:
        return EXIT_ERROR
    failing = tally.worst is not None and tally.worst >= fail_level
    return EXIT_FINDINGS if failing and not args.exit_zero else EXIT_CLEAN


class _Stdout:
    """Standard output, and whether anything was written to it (a report with nothing in it prints no empty line)."""

    def __init__(self):
        self.written = False

    def write(self, text: str) -> None:
        if text:
            self.written = True
            sys.stdout.write(text)


def fixed(results, unsafe: bool) -> bool:
    """Apply the fixes of `results` and say what was done; whether any file changed."""
    applied, skipped, held_back = apply_fixes(results, unsafe)
    manual = [f for r in results for f in r.findings if f.fix and f.fix.manual]
    if manual:
        kinds = ", ".join(sorted({f.fix.manual for f in manual}))
        print(f"fix not applied to {len(manual)} finding(s) on a {kinds}: --fix edits block mappings only; apply it by hand", file=sys.stderr)
    if applied or skipped:
        print(f"applied {applied} fix(es)" + (f"; {skipped} overlapped another and were left for the next run" if skipped else "")
              + "; run the doctor again to see what is left", file=sys.stderr)
    if held_back:
        print(f"{held_back} unsafe fix(es) not applied (they may change what runs); --unsafe-fixes applies them", file=sys.stderr)
    return bool(applied)




def parse_target(spec) -> dict[str, str]:
    """`dynamo=0.5.0,vllm=0.11.2` (or a [tool.disagg] table) -> {system: release}, checked against the known releases."""
    from disagg.schemas.knowledge import known_releases, parse_version

    if isinstance(spec, dict):
        items = [(str(k), str(v)) for k, v in spec.items()]
    else:
        items = [tuple(part.split("=", 1)) for part in str(spec).split(",") if part.strip()]
    out: dict[str, str] = {}
    known = known_releases()
    for item in items:
        if len(item) != 2 or not item[0].strip():
            raise ValueError(f"--target-version takes SYSTEM=VERSION[,...] (systems: {', '.join(sorted(known))}), got {'='.join(item)!r}")
        system, version = item[0].strip().lower(), item[1].strip()
        if system not in known:
            raise ValueError(f"--target-version: unknown system {system!r}; known: {', '.join(sorted(known))}")
        release = parse_version(version)
        if release is None or (known[system] and release not in known[system]):
            near = ", ".join(known[system][-5:])
            raise ValueError(f"--target-version: {system} has no release {version!r} in the doctor's tables (latest: {near})")
        out[system] = release
    return out


def apply_fixes(results, unsafe: bool) -> tuple[int, int, int]:
    """Apply each file's fixes (safe ones, and unsafe ones with --unsafe-fixes), never two that overlap, keeping the
    file's line endings. Returns (applied, skipped for overlapping, unsafe held back)."""
    from disagg.doctor.finding import apply_edits, overlapping

    applied = skipped = held = 0
    for r in results:
        if r.path == "<stdin>" or r.error:
            continue
        chosen, edits, seen = [], [], set()
        for f in r.findings:
            if not f.fix or not f.fix.edits or f.fix.edits in seen:
                continue
            seen.add(f.fix.edits)
            if not f.fix.safe and not unsafe:
                held += 1
                continue
            if overlapping(edits + list(f.fix.edits)):
                skipped += 1
                continue
            chosen.append(f.fix)
            edits.extend(f.fix.edits)
        if not edits:
            continue
        with open(r.path, encoding="utf-8", newline="") as handle:
            text = handle.read()
        with open(r.path, "w", encoding="utf-8", newline="") as handle:
            handle.write(apply_edits(text, edits))
        applied += len(chosen)
    return applied, skipped, held
