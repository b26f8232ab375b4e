"""`disagg doctor --env [PATH...]`: the host preflight. What this machine would do with KV: versions, NICs, RDMA,
GPUs, IMEX, UCX settings, NIXL backends, and one measured NIXL transfer with the transport UCX chose; DG7xx findings;
with config files, what they ask of this host compared with what it has."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from .common import EXIT_CLEAN, EXIT_ERROR, EXIT_FINDINGS, err


def measured_transfer(nbytes: int, timeout: float = 60.0) -> dict:
    """Run the NIXL probe in its own process (UCX prints its protocol choices on that process's stdout)."""
    from disagg.doctor.host import parse_proto_info

    env = {**os.environ, "UCX_PROTO_INFO": "y"}
    try:
        r = subprocess.run([sys.executable, "-m", "disagg.runtime.nixl_probe", "--bytes", str(nbytes)], capture_output=True, text=True,
                           timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {"bytes": nbytes, "seconds": None, "backend": "UCX", "error": f"the probe did not finish within {timeout:.0f} s", "transports": []}
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("DISAGG_PROBE ")), None)
    if line is None:
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"bytes": nbytes, "seconds": None, "backend": "UCX", "error": f"the probe exited {r.returncode}: {tail[0]}", "transports": []}
    result = json.loads(line.removeprefix("DISAGG_PROBE "))
    rows = parse_proto_info(r.stdout)
    result["transports"] = sorted({row["config"] for row in rows})
    result["transport"] = ", ".join(result["transports"]) or None
    result["proto"] = rows
    if not rows and result.get("error") is None:
        result["transport_note"] = "UCX printed no protocol table (UCX_PROTO_INFO needs UCX >= 1.15 with protocols v2)"
    return result


def run(args: argparse.Namespace, registry) -> int:
    from disagg.doctor.context import LintOptions
    from disagg.doctor.engine import lint_paths
    from disagg.doctor.finding import Severity
    from disagg.doctor.host import HostContext, collect

    fmt = args.output_format or "text"
    if fmt not in ("text", "json"):
        return err("--env reports as text or json")
    deployments = []
    if args.paths:
        for result in lint_paths(args.paths, [], LintOptions()):
            if result.error:
                print(str(result.error), file=sys.stderr)
                return EXIT_ERROR
            if result.deployment is not None:
                deployments.append(result.deployment)
    facts = collect()
    if facts.nixl.get("available"):
        facts.nixl["transfer"] = measured_transfer(args.env_bytes)
    else:
        facts.notes.append(f"no NIXL transfer measured: {facts.nixl.get('error')}")
    ctx = HostContext(facts, dict(os.environ), deployments)
    findings = [f for rule in registry if rule.code.startswith("DG7") for f in rule().check(ctx)]
    if fmt == "json":
        print(json.dumps({"environment": facts.to_dict(), "findings": [f.to_dict() for f in findings]}, indent=2))
    else:
        print(render_text(facts, findings))
    return EXIT_FINDINGS if any(f.severity >= Severity.WARNING for f in findings) else EXIT_CLEAN


def render_text(facts, findings) -> str:
    p = facts.packages
    lines = ["packages: " + ", ".join(f"{k} {v}" for k, v in p.items() if v) + "; not installed: " + (", ".join(k for k, v in p.items() if not v) or "-")]
    ucx = facts.ucx
    lines.append(f"UCX {ucx.get('version') or '?'}; settings: {', '.join(f'{k}={v}' for k, v in ucx['settings'].items()) or 'none'}; "
                 f"transports: {', '.join(ucx['transports']) if ucx.get('transports') else ucx.get('why_no_transports')}")
    nixl = facts.nixl
    lines.append(f"NIXL: {'backends ' + ', '.join(nixl['backends']) if nixl.get('available') else nixl.get('error')}")
    t = nixl.get("transfer")
    if t:
        if t.get("error"):
            lines.append(f"  transfer: FAILED ({t['error']})")
        else:
            lines.append(f"  transfer: {t['bytes']} bytes READ between two processes in {t['seconds'] * 1e3:.2f} ms ({t['gbytes_per_s']} GB/s), "
                         f"backend {t['backend']}, transport {t.get('transport') or '? (' + t.get('transport_note', '') + ')'}")
    nics = ", ".join(f"{n.name} ({n.link}, {n.state}{', NUMA ' + str(n.numa_node) if n.numa_node is not None else ''}{', virtual' if n.virtual else ''})" for n in facts.nics)
    lines.append(f"NICs: {nics or 'none'}")
    lines.append("RDMA: " + (", ".join(f"{r.device}:{r.port} {r.link_layer} state {r.state} gids {r.gids} NUMA {r.numa_node}" for r in facts.rdma) or "none"))
    lines.append("GPUs: " + (", ".join(f"{g.index} {g.name} {g.pci} NUMA {g.numa_node}" for g in facts.gpus) or "none")
                 + (f"; driver {facts.driver.get('driver')}, CUDA {facts.driver.get('cuda', '?')}" if facts.driver else ""))
    lines.append(f"IMEX: {'channels ' + ', '.join(facts.imex['channels']) if facts.imex.get('present') else 'not present'}")
    for note in facts.notes:
        lines.append(f"  note: {note}")
    for f in findings:
        lines.append(f"{f.path}:{f.line}:{f.column}: {f.code} [{f.severity.label}] {f.message}" + (f"\n  fix: {f.fix.title}" if f.fix else ""))
    lines.append(f"{len(findings)} host finding{'s' if len(findings) != 1 else ''}")
    return "\n".join(lines)
