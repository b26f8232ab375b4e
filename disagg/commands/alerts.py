"""`disagg doctor --emit-alerts[=rules|prometheusrule|tests] [PATH...]`: Prometheus alerting rules from the live rules."""

from __future__ import annotations

import argparse

from .common import EXIT_CLEAN, EXIT_ERROR, err


def systems_of(paths: list[str]) -> list[str] | str:
    """The systems whose metrics the deployments in `paths` expose (every known one without paths), or why not."""
    from disagg.doctor.context import LintOptions
    from disagg.doctor.engine import lint_paths
    from disagg.doctor.live.alerts import BUILDERS

    if not paths:
        return list(BUILDERS)
    found: list[str] = []
    for result in lint_paths(paths, [], LintOptions()):
        if result.error:
            return str(result.error)
        dep = result.deployment
        if dep is None:
            continue
        if dep.format == "dynamo-v0":
            # `disagg serve` runs Dynamo v0 configs, with the runtime's metrics; Dynamo v0 itself exposed neither the
            # 1.x frontend's series nor vLLM v1's NIXL counters these alerts read
            found.append("disagg")
            continue
        if dep.format == "llm-d":
            found.append("llm-d")  # the endpoint picker's own config: its P/D decision counters are what the llm-d alerts read
        for w in dep.workers:
            found += [s for s in (w.engine, w.system) if s in BUILDERS]
    return [s for s in BUILDERS if s in found]


def run(args: argparse.Namespace) -> int:
    import yaml

    from disagg.doctor.live.alerts import alert_tests, prometheus_rule, rule_groups

    systems = systems_of(args.paths)
    if isinstance(systems, str):
        print(systems)
        return EXIT_ERROR
    if not systems:
        return err("no prefill/decode worker of a system with alerts (disagg, vLLM, Dynamo, SGLang, llm-d) in the files given")
    doc = {"rules": rule_groups, "prometheusrule": prometheus_rule}.get(args.emit_alerts)
    out = doc(systems) if doc else alert_tests(args.alert_rule_file, systems)
    print(yaml.safe_dump(out, sort_keys=False, width=200), end="")
    return EXIT_CLEAN
