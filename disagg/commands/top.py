"""`disagg top URL`: the Textual dashboard."""

from __future__ import annotations

import argparse

from .common import EXIT_CLEAN, EXIT_ERROR, err, url_problem


def run(args: argparse.Namespace) -> int:
    import importlib.util

    if importlib.util.find_spec("textual") is None:
        return err("the dashboard needs Textual: pip install 'disagg[live]'")
    if bool(args.url) == bool(args.replay):
        return err("give a URL to watch, or --replay FILE (not both)")
    if args.interval <= 0 or args.window <= 0 or args.min_requests < 1:
        return err("--interval and --window must be positive, --min-requests at least 1")
    from disagg.doctor.dashboard.app import make_app, replay_source
    from disagg.doctor.live.probe import probe_once

    if args.replay:
        try:
            frames = list(replay_source(args.replay))
        except (OSError, ValueError, KeyError) as exc:
            return err(f"cannot replay {args.replay}: {exc}")
        if not frames:
            return err(f"{args.replay} holds no snapshot")
        app = make_app(None, frames[0].frontend + " (replay)", interval=args.interval, window=args.window, min_requests=args.min_requests, replay=frames)
    else:
        url = args.url.rstrip("/")
        if (problem := url_problem(url, "disagg top")) is not None:
            return err(problem)
        if args.record:
            try:
                open(args.record, "a").close()  # a bad path is a usage error now, not a traceback from the dashboard
            except OSError as exc:
                return err(f"cannot record to {args.record}: {exc.strerror or exc}")
        from disagg.doctor.registry import default_registry

        from .live import served_config, watch

        watched = watch(url, args.prometheus, args.prometheus_selector)
        if isinstance(watched, str):
            return err(watched)
        collector, _ = watched

        static = served_config(url, default_registry())
        app = make_app(collector.tick, url, interval=args.interval, record=args.record, probe=lambda ctx: probe_once(url, ctx),
                       parse=static.deployment if static else None, static=static.findings if static else None,
                       window=args.window, min_requests=args.min_requests)
    app.run()
    return EXIT_ERROR if app.return_code else EXIT_CLEAN


