"""`disagg doctor --live URL`: watch a running deployment (the loop `disagg top` shares is in doctor/live)."""

from __future__ import annotations

import argparse
import sys

from .common import EXIT_CLEAN, EXIT_ERROR, EXIT_FINDINGS, err, url_problem


def run(args: argparse.Namespace, registry) -> int:
    import json
    import time

    from disagg.doctor.context import LintOptions
    from disagg.doctor.engine import lint_paths
    from disagg.doctor.finding import Severity
    from disagg.doctor.live.canary import canary
    from disagg.doctor.live.diagnose import Diagnoser, LiveContext
    from disagg.doctor.live.probe import probe_once
    from disagg.doctor.live.window import Window

    url = args.live.rstrip("/")
    if (problem := url_problem(url, "--live")) is not None:
        return err(problem)
    if args.reference and not args.probe:
        return err("--reference names the endpoint --probe's canary compares with: give --probe too")
    if args.reference and (problem := url_problem(args.reference.rstrip("/"), "--reference")) is not None:
        return err(problem)
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
    watched = watch(url, args.prometheus, args.prometheus_selector)
    if isinstance(watched, str):
        return err(watched)
    collector, first = watched
    window = Window(seconds=args.window)
    window.add(first)
    ctx = LiveContext(window=window, target=url, deployment=static.deployment if static else None, static=static.findings if static else [], min_requests=args.min_requests)
    diag = Diagnoser([r for r in registry if r.live])
    if text_mode:
        where = f" with config {static.path}" if static else " (no config: diagnosing from metrics alone)"
        print(f"watching {url} every {args.interval:g} s{where}; metrics from {collector.source()}; systems: {', '.join(first.systems) or 'unknown'}")
        for note in first.utilisation_notes:
            print(f"  utilisation: {note}")
        for f in (static.findings if static else []):
            if f.severity >= Severity.WARNING:
                print(f"  static {f.code} [{f.severity.label}] {f.path}:{f.line}:{f.column}: {f.message}")
    probe = probe_once(url, ctx) if args.probe else None
    if probe is not None:
        probe["canary"] = canary(url, ctx, args.reference)
    ctx.probe = probe
    if probe and text_mode:
        print(f"probe: {probe['message']}")
        print(probe["canary"]["message"])
    duration = args.duration
    if duration is None and probe is not None and not args.until_finding:
        duration = 2 * args.interval  # the probe is the evidence: scrape what it did, then give the verdict
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
            if duration is not None and time.monotonic() - start >= duration:
                break
    except KeyboardInterrupt:
        pass
    finally:
        collector.close()
    # exit 1 when an error holds at the end, live (a deployment that stopped answering is one: DG508) or static (the
    # config given, or the one the frontend serves, has an error even if the window did not show its effect yet)
    failing = [h.finding for h in held if h.finding.severity >= Severity.ERROR] + [f for f in (static.findings if static else []) if f.severity >= Severity.ERROR]
    summary = health_summary(window, probe)
    if text_mode:
        if held:
            print(f"holding at the end ({window.last.t:.1f} s): " + ", ".join(f"{h.finding.code}" + (f" ({h.finding.extra['cause']})" if "cause" in h.finding.extra else "") for h in held))
        else:
            print(f"no live finding holds after {window.last.t:.1f} s: {summary['text']}")
    else:
        doc = {
            "target": url, "metrics_source": collector.source(), "watched_s": round(window.last.t, 2), "snapshots": len(window.snaps), "systems": list(window.last.systems),
            "utilisation_notes": list(window.last.utilisation_notes), "probe": probe, "summary": summary,
            "findings": [f.to_dict() for f in (static.findings if static else [])] + [h.finding.to_dict() for h in held],
        }
        print(json.dumps(doc, indent=2))
    return EXIT_FINDINGS if failing else EXIT_CLEAN


def watch(url: str, prometheus: str | None, selector: str | None):
    """(a Collector on the deployment, its first snapshot), or why it cannot be watched, in words (a usage error);
    `disagg doctor --live` and `disagg top` both start here."""
    from disagg.doctor.live.collect import Collector
    from disagg.doctor.live.prometheus import PrometheusError

    try:
        collector = Collector(url, prometheus_url=prometheus, prometheus_selector=selector)
        first = collector.tick()
    except PrometheusError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - any failure of the first scrape is a usage problem to report
        return f"cannot watch {url}: {exc}"
    if first.frontend_error and not first.workers:
        collector.close()
        return f"cannot read the deployment's metrics: {first.frontend_error}"
    if prometheus and not first.signals:
        collector.close()
        return (f"Prometheus at {prometheus} holds no disagg, vLLM, Dynamo or SGLang series{' matching ' + selector if selector else ''}: "
                "is it scraping the deployment?")
    return collector, first


def health_summary(window, probe: dict | None) -> dict:
    """What the window shows when all is well, in numbers: requests, the share prefilled remotely, KV failures,
    prefill workers up."""
    from disagg.doctor.finding import count
    from disagg.doctor.live.diagnose import LiveContext
    from disagg.doctor.rules.live._signals import prefill_workers, traffic

    ctx = LiveContext(window=window, target=window.last.frontend if window.last else "")
    total, remote, local = traffic(ctx)
    failures = window.delta("kv_failures")
    known, up = prefill_workers(ctx)
    out = {"window_s": round(window.span, 1), "requests": int(total), "remote": int(remote), "local_by_reason": {k: int(v) for k, v in local.items()},
           "kv_failures": int(failures), "prefill_workers": len(known), "prefill_workers_up": len(up)}
    parts = []
    if total:
        parts.append(f"{remote / total:.0%} of {count(total, 'request')} in the last {window.span:.0f} s prefilled remotely")
        if local:
            parts.append("local: " + ", ".join(f"{int(v)} {k}" for k, v in sorted(local.items())))
    else:
        parts.append(f"no requests in the last {window.span:.0f} s")
    parts.append(count(failures, "KV transfer failure"))
    if known:
        parts.append(f"{len(up)}/{count(len(known), 'prefill worker')} up")
    if probe and probe.get("route"):
        parts.append(f"probe prefilled {'remotely' if probe['route'] == 'remote' else 'locally'}")
    c = (probe or {}).get("canary") or {}
    if c.get("compared") and c.get("diverged_at") is None:
        parts.append(f"canary answers match ({c['max_tokens']} tokens)")
        out["canary"] = "match"
    elif c:
        out["canary"] = "differ" if c.get("compared") else "not compared"
    out["text"] = "; ".join(parts)
    return out


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
    return lint_text(served.get("name") or served.get("path") or url + "/config", served["text"], [r for r in registry if not r.live], LintOptions())


def print_live(f) -> None:
    ev = f.extra.get("evidence", {})
    cause = f" cause={f.extra['cause']}" if "cause" in f.extra else ""
    print(f"[+{f.extra.get('first_seen_s', 0):.1f}s] {f.code} [{f.severity.label}]{cause} {f.path}:{f.line}:{f.column}: {f.message}")
    if ev:
        print("    evidence: " + ", ".join(f"{k}={v}" for k, v in ev.items()))
    if f.fix:
        print(f"    fix: {f.fix.title}")


