"""`disagg doctor --live URL`: watch a running deployment (the loop `disagg top` shares is in doctor/live)."""

from __future__ import annotations

import argparse
import sys

from .common import EXIT_CLEAN, EXIT_ERROR, EXIT_FINDINGS, err


def run(args: argparse.Namespace, registry) -> int:
    import json
    import time

    from disagg.doctor.context import LintOptions
    from disagg.doctor.engine import lint_paths
    from disagg.doctor.finding import Severity
    from disagg.doctor.live.collect import Collector
    from disagg.doctor.live.diagnose import Diagnoser, LiveContext
    from disagg.doctor.live.probe import probe_once
    from disagg.doctor.live.window import Window

    url = args.live.rstrip("/")
    if args.interval <= 0 or (args.duration is not None and args.duration <= 0):
        return err("--interval and --duration must be positive")
    text_mode = (args.output_format or "text") == "text"
    if args.output_format not in (None, "text", "json"):
        return err("--live reports as text or json")
    static = None
    if args.paths:
        results = lint_paths(args.paths[:1], [r for r in registry if not r.live], LintOptions())
        static = results[0]
        if static.error:
            print(str(static.error), file=sys.stderr)
            return EXIT_ERROR
    else:
        static = served_config(url, registry)
    collector = Collector(url, prometheus_url=args.prometheus)
    try:
        first = collector.tick()
    except Exception as exc:  # noqa: BLE001 - any failure of the first scrape is a usage problem to report
        return err(f"cannot watch {url}: {exc}")
    if first.frontend_error and not first.workers:
        return err(f"cannot read {url}/metrics: {first.frontend_error}")
    window = Window(seconds=args.window)
    window.add(first)
    ctx = LiveContext(window=window, target=url, deployment=static.deployment if static else None, static=static.findings if static else [], min_requests=args.min_requests)
    diag = Diagnoser([r for r in registry if r.live])
    if text_mode:
        where = f" with config {static.path}" if static else " (no config: diagnosing from metrics alone)"
        print(f"watching {url} every {args.interval:g} s{where}; systems: {', '.join(first.systems) or 'unknown'}")
        for note in first.utilisation_notes:
            print(f"  utilisation: {note}")
        for f in (static.findings if static else []):
            if f.severity >= Severity.WARNING:
                print(f"  static {f.code} [{f.severity.label}] {f.path}:{f.line}:{f.column}: {f.message}")
    probe = probe_once(url, ctx) if args.probe else None
    if probe and text_mode:
        print(f"probe: {probe['message']}")
    start = time.monotonic()
    held = []
    try:
        while True:
            time.sleep(max(0.0, args.interval - ((time.monotonic() - start) % args.interval)))
            window.add(collector.tick())
            new, held = diag.step(ctx)
            for h in new:
                if text_mode:
                    print_live(h.finding)
            if args.until_finding and any(h.finding.severity >= Severity.ERROR for h in held):
                break
            if args.duration is not None and time.monotonic() - start >= args.duration:
                break
    except KeyboardInterrupt:
        pass
    finally:
        collector.close()
    failing = [h.finding for h in held if h.finding.severity >= Severity.ERROR]
    if text_mode:
        if held:
            print(f"holding at the end ({window.last.t:.1f} s): " + ", ".join(f"{h.finding.code}" + (f" ({h.finding.extra['cause']})" if "cause" in h.finding.extra else "") for h in held))
        else:
            print(f"no live finding holds after {window.last.t:.1f} s")
    else:
        doc = {
            "target": url, "watched_s": round(window.last.t, 2), "snapshots": len(window.snaps), "systems": list(window.last.systems),
            "utilisation_notes": list(window.last.utilisation_notes), "probe": probe,
            "findings": [f.to_dict() for f in (static.findings if static else [])] + [h.finding.to_dict() for h in held],
        }
        print(json.dumps(doc, indent=2))
    return EXIT_FINDINGS if failing else EXIT_CLEAN


def served_config(url: str, registry):
    """Lint the config a disagg frontend serves at /config (None for other systems)."""
    from disagg.doctor.context import LintOptions
    from disagg.doctor.engine import lint_text
    from disagg.doctor.live.scrape import ScrapeError, fetch_json

    try:
        served = fetch_json(url + "/config")
    except ScrapeError:
        return None  # not a disagg frontend: diagnose from metrics alone
    if not served.get("text"):
        return None
    return lint_text(served.get("path", url + "/config"), served["text"], [r for r in registry if not r.live], LintOptions())


def print_live(f) -> None:
    ev = f.extra.get("evidence", {})
    cause = f" cause={f.extra['cause']}" if "cause" in f.extra else ""
    print(f"[+{f.extra.get('first_seen_s', 0):.1f}s] {f.code} [{f.severity.label}]{cause} {f.path}:{f.line}:{f.column}: {f.message}")
    if ev:
        print("    evidence: " + ", ".join(f"{k}={v}" for k, v in ev.items()))
    if f.fix:
        print(f"    fix: {f.fix.title}")


