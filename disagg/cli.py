"""The `disagg` command line: the only place that prints and exits. Heavy modules load only in the subcommand that needs them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .commands.common import EXIT_CLEAN, EXIT_ERROR
from .schemas.formats import FORMATS


class _Help(argparse.HelpFormatter):
    """argparse builds a formatter for every add_argument, and its default asks shutil for the terminal width:
    importing shutil (and bz2, lzma) cost ~4 ms of every cold run. os answers the same question."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None):
        if width is None:
            import os

            try:
                width = os.get_terminal_size(sys.stdout.fileno()).columns - 2
            except (OSError, ValueError):
                width = int(os.environ.get("COLUMNS", "100")) - 2
        super().__init__(prog, indent_increment, max_help_position, width)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="disagg", description="Find out why disaggregated LLM serving sends no traffic to its prefill workers.",
                                     formatter_class=_Help)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    doc = sub.add_parser("doctor", formatter_class=_Help, help="check disaggregated-serving configs", description="Check disaggregated-serving configs (files, folders, or - for stdin).",
                         epilog="exit codes: 0 no finding at or above the fail level; 1 findings; 2 usage error or unreadable input; "
                                "3 internal error (a reader or rule raised: the report is incomplete, even with --exit-zero)")
    doc.add_argument("paths", nargs="*", metavar="PATH", help="config files, folders searched for *.yaml/*.yml/*.sh, Justfiles and the *.json files that are Kubernetes objects or ECS task definitions (dot-folders such as .github/ and .gitlab/ included; .git, caches and virtualenvs not), or - for stdin")
    doc.add_argument("--output-format", choices=("text", "json", "sarif", "github", "junit"), help="how to report (default text)")
    doc.add_argument("--format", choices=FORMATS, default="auto",
                     help="input format (default: detected per file)")
    doc.add_argument("--select", action="append", metavar="CODES", help="rule codes or prefixes to run, comma-separated, or ALL (default ALL)")
    doc.add_argument("--extend-select", action="append", metavar="CODES", help="codes to add to the selection")
    doc.add_argument("--ignore", action="append", metavar="CODES", help="codes or prefixes to skip")
    doc.add_argument("--exclude", action="append", metavar="GLOB", help="skip files and folders matching a glob when searching folders")
    doc.add_argument("--fail-level", choices=("error", "warning", "info"), help="lowest severity that makes the exit code 1 (default warning)")
    doc.add_argument("--exit-zero", action="store_true", help="exit 0 even when findings are reported (an internal error still exits 3)")
    doc.add_argument("--explain", metavar="RULE", help="print a rule's documentation (by code, e.g. DG205, or name) and exit")
    doc.add_argument("--emit-alerts", nargs="?", const="rules", choices=ALERT_FORMS,
                     help="print Prometheus alerting rules made from the live rules (for the systems in PATH..., else all): rule groups (default), "
                          "a PrometheusRule, or promtool unit tests for them")
    doc.add_argument("--env", action="store_true", help="the host preflight: versions, NICs, RDMA, GPUs, UCX and NIXL as this host has them, one measured "
                     "NIXL transfer, and DG7xx findings (with PATH..., what the configs ask of this host)")
    doc.add_argument("--env-bytes", type=int, default=16 << 20, metavar="N", help="with --env: bytes of the measured NIXL transfer (default 16 MiB)")
    doc.add_argument("--alert-rule-file", default="disagg-alerts.yaml", metavar="FILE", help="with --emit-alerts=tests: the rule file the tests load (default disagg-alerts.yaml)")
    doc.add_argument("--gpus", type=int, metavar="N", help="GPUs available to the deployment (DG301); default: what NVML reports here")
    doc.add_argument("--workload", metavar="SPEC", help="predict the remote share: isl=200,osl=10[,prefix-hit=0.2] or a JSON-lines trace")
    doc.add_argument("--fix", action="store_true", help="apply the safe fixes in place (line endings kept; overlapping fixes wait for the next run)")
    doc.add_argument("--unsafe-fixes", action="store_true", help="with --fix, also apply fixes that may change what runs (renames, flag rewrites)")
    doc.add_argument("--target-version", metavar="SYS=VER", help="the releases the files target, e.g. dynamo=0.5.0,vllm=0.11.2 (default: inferred per file)")
    doc.add_argument("--verbose", "-v", action="store_true", help="list skipped files and why, and the pairs checked")
    doc.add_argument("--require-files", action="store_true", help="exit 2 when the paths hold no config to check")
    doc.add_argument("--skip-unrecognized", action="store_true", help="skip named files that are no serving config (as folder searches do); for pre-commit")
    doc.add_argument("--no-partner-search", action="store_true", help="check only the files given: do not read the other side of a pair "
                     "from the named file's folder (git's tracked files there in a work tree)")
    doc.add_argument("--color", choices=("auto", "always", "never"), default="auto", help="colour text output (default auto)")
    live = doc.add_argument_group("live", "watch a running deployment (needs `pip install 'disagg[live]'` for utilisation)")
    live.add_argument("--live", metavar="URL", help="frontend URL of a running deployment (disagg serve, vLLM, Dynamo)")
    live.add_argument("--interval", type=float, default=1.0, help="seconds between scrapes (default 1)")
    live.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    live.add_argument("--window", type=float, default=30.0, help="seconds of history the diagnosis looks at (default 30)")
    live.add_argument("--min-requests", type=int, default=5, help="requests in the window before zero prefill traffic counts as certain (default 5; a --probe prefilled locally counts at once)")
    live.add_argument("--prometheus", metavar="URL", help="read the deployment's metrics (and DCGM GPU series) from this Prometheus server instead of scraping the frontend")
    live.add_argument("--prometheus-selector", metavar="MATCHERS", help='label matchers that pick this deployment\'s series in Prometheus, e.g. job="disagg",namespace="prod"')
    live.add_argument("--until-finding", action="store_true", help="exit as soon as an error-level finding is certain")
    live.add_argument("--probe", action="store_true", help="send one request longer than the threshold; where its prefill ran is evidence on its own (without --duration, the watch ends after two scrapes); "
                      "then the known-answer canary: one greedy prompt through the P/D path and prefilled locally, compared token by token (DG507)")
    live.add_argument("--reference", metavar="URL", help="with --probe: compare the canary's answer with this aggregated endpoint of the same model "
                      "(for stacks without disagg serve's per-request route)")

    serve = sub.add_parser("serve", formatter_class=_Help, help="run a config: OpenAI-compatible frontend, router, decode and prefill workers",
                           description="Run a Dynamo-style config with the reference runtime (mock engine by default).")
    serve.add_argument("config", metavar="CONFIG")
    serve.add_argument("--engine", choices=("mock", "vllm"), default="mock", help="worker engine (default mock: no GPU, no model)")
    serve.add_argument("--host", default="127.0.0.1", help="frontend address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="frontend port (default: the Frontend section's port, else 8000; 0 picks a free one)")
    serve.add_argument("--kv-transport", choices=("auto", "nixl", "channel"), default="auto", help="how KV moves between workers (default auto: NIXL when installed, else over the workers' own authenticated connections, said at start)")
    serve.add_argument("--mock-timing", choices=("default", "zero"), default="default", help="mock engine costs: default, or zero (to measure the runtime itself)")
    serve.add_argument("--mock-prefill-us-per-token", type=float, help="mock prefill cost per uncached token, microseconds (default 20)")
    serve.add_argument("--mock-decode-ms-per-step", type=float, help="mock decode step cost, milliseconds (default 4)")
    serve.add_argument("--prefill-concurrency", type=int, default=1, help="prefills one prefill worker runs at once (default 1, as Dynamo v0)")
    serve.add_argument("--prefill-timeout", type=float, default=10.0, help="seconds before a remote prefill falls back to local (default 10)")
    serve.add_argument("--kv-arena-mb", type=int, default=256, help="host memory each mock worker holds for KV in flight, MiB (default 256)")
    serve.add_argument("--log-dir", help="where each process writes its log (default: a new private temporary folder)")
    serve.add_argument("--api-key-file", metavar="FILE", help="require `Authorization: Bearer KEY` on /v1/*, /config, /workers, with KEY read from FILE "
                                                             "(or set $DISAGG_API_KEY; default none)")
    serve.add_argument("--api-key", help="the same, with the key on the command line (visible to every local user in `ps`: prefer the file or the variable)")
    serve.add_argument("--drain-seconds", type=float, default=30.0, help="on SIGTERM, how long requests in flight may finish (default 30)")
    serve.add_argument("--max-connections", type=int, default=4096, help="client connections the frontend holds at once (default 4096; idle ones are closed first)")
    serve.add_argument("--fault-injection", action="store_true", help="enable POST /debug/faults (for tests)")
    serve.add_argument("--no-request-log", action="store_true", help="do not print a line per request (the periodic stats line still prints; "
                       "both are in the frontend's log); DISAGG_LOG_STATS_INTERVAL sets the stats interval (default 10 s, 0: off)")
    hosts = serve.add_argument_group("across hosts", "run some roles here and find the others through etcd (the same config on every host; "
                                                     "DISAGG_RUN_SECRET set to one value on every host)")
    hosts.add_argument("--roles", default="frontend,decode,prefill", help="what runs on this host, comma-separated (default: all three)")
    hosts.add_argument("--discovery", metavar="etcd://HOST:PORT", help="register this host's workers in etcd and find the others there")
    hosts.add_argument("--namespace", default="disagg", help="etcd key prefix of this deployment (default disagg)")
    hosts.add_argument("--advertise", metavar="ADDR", help="the address other hosts reach this one at (default: the address that reaches etcd)")
    hosts.add_argument("--host-id", help="part of each worker id on this host (default: the host name)")
    serve.add_argument("--strict", action="store_true", help="do not start a config the doctor finds errors in (exit 1); by default they are printed and it runs as written")

    load = sub.add_parser("load", formatter_class=_Help, help="send a bounded burst of completions to a frontend and show where prefill ran")
    load.add_argument("url", metavar="URL", help="frontend URL, e.g. http://127.0.0.1:8000")
    load.add_argument("--isl", type=int, default=200, help="prompt length in tokens (default 200)")
    load.add_argument("--osl", type=int, default=10, help="output tokens (default 10)")
    load.add_argument("--requests", type=int, default=20, help="how many requests (default 20, at most 100000)")
    load.add_argument("--concurrency", type=int, default=4, help="requests in flight at once (default 4)")
    load.add_argument("--model", help="model name to send (default: the first one /v1/models lists)")

    top = sub.add_parser("top", formatter_class=_Help, help="live dashboard of a running deployment (Textual)")
    top.add_argument("url", nargs="?", metavar="URL", help="frontend URL of a running deployment")
    top.add_argument("--interval", type=float, default=1.0, help="seconds between scrapes (default 1)")
    top.add_argument("--prometheus", metavar="URL", help="read the deployment's metrics (and DCGM GPU series) from this Prometheus server")
    top.add_argument("--prometheus-selector", metavar="MATCHERS", help='label matchers that pick this deployment\'s series, e.g. job="disagg"')
    top.add_argument("--record", metavar="FILE", help="append every snapshot to FILE as JSON lines (attach it to a bug report)")
    top.add_argument("--replay", metavar="FILE", help="play a recording back instead of watching a deployment (space pauses, left/right seek, +/- speed)")
    top.add_argument("--window", type=float, default=30.0, help="seconds of history the diagnosis looks at (default 30, as --live)")
    top.add_argument("--min-requests", type=int, default=5, help="requests in the window before zero prefill traffic counts as certain (default 5, as --live)")

    tiny = sub.add_parser("make-tiny-model", formatter_class=_Help, help="write a tiny Llama model (config, tokenizer, random weights) for machines without a model hub")
    tiny.add_argument("dir", metavar="DIR")
    tiny.add_argument("--no-weights", action="store_true", help="config and tokenizer only (enough for Dynamo's mock engine)")
    tiny.add_argument("--seed", type=int, default=0)

    rules = sub.add_parser("rules", formatter_class=_Help, help="list the doctor's rules")
    rules.add_argument("--output-format", choices=("text", "json", "markdown"), default="text")
    return parser


COMMANDS = {"rules": "rules", "serve": "serve", "load": "load", "top": "top", "make-tiny-model": "tiny"}


def rules_markdown(registry) -> str:
    from .commands.rules import rules_markdown as table

    return table(registry)


ALERT_FORMS = ("rules", "prometheusrule", "tests")


def _alerts_form(argv: list[str]) -> list[str]:
    """`--emit-alerts PATH`: the path is a path, not the flag's optional value (which is one of ALERT_FORMS)."""
    out = list(argv)
    for i, a in enumerate(out):
        if a == "--emit-alerts" and (i + 1 == len(out) or out[i + 1] not in ALERT_FORMS):
            out[i] = "--emit-alerts=rules"
    return out


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    parser = build_parser()
    args = parser.parse_args(_alerts_form(list(sys.argv[1:] if argv is None else argv)))
    if args.version:
        from disagg import __version__

        print(f"disagg {__version__}")
        return EXIT_CLEAN
    try:
        if args.command == "doctor":
            from .commands import doctor

            return doctor.run(args, parser)
        if args.command in COMMANDS:
            import importlib

            return importlib.import_module(f"disagg.commands.{COMMANDS[args.command]}").run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_CLEAN
    parser.print_help()
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
