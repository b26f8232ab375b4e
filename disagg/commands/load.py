"""`disagg load URL`: a bounded burst of completions."""

from __future__ import annotations

import argparse

from .common import EXIT_CLEAN, EXIT_FINDINGS, err, runtime_missing, url_problem


def run(args: argparse.Namespace) -> int:
    import asyncio

    if (missing := runtime_missing()) is not None:
        return err(missing)

    from disagg.runtime.load import not_a_frontend, run_load, summary

    if (problem := url_problem(args.url, "disagg load")) is not None:
        return err(problem)

    if not 1 <= args.requests <= 100_000 or args.isl < 1 or args.osl < 1 or args.concurrency < 1:
        return err("--requests must be 1..100000 and --isl, --osl, --concurrency at least 1")
    result = asyncio.run(run_load(args.url, args.isl, args.osl, args.requests, args.concurrency, model=args.model))
    if not_a_frontend(result):
        return err(f"{args.url} serves no OpenAI completions: {', '.join(f'{n} x {e}' for e, n in result.errors.items())}")
    print("\n".join(summary(result)))
    return EXIT_CLEAN if result.ok == result.sent else EXIT_FINDINGS


