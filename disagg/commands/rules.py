"""`disagg rules`: the rule list, and the README's table generated from the same registry."""

from __future__ import annotations

import argparse

from .common import EXIT_CLEAN


def run(args: argparse.Namespace) -> int:
    from disagg.doctor.registry import default_registry

    registry = default_registry()
    if args.output_format == "json":
        import json

        print(json.dumps([{"code": r.code, "name": r.name, "severity": r.severity.label, "also": {sev.label: when for sev, when in r.also.items()}, "summary": r.summary(), "doc": r.doc()} for r in registry], indent=2))
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
        lines.append(f"| {r.code} | `{r.name}` | {r.severities()} | {r.summary()} |")
    return "\n".join(lines)


