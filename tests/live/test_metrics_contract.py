"""One metrics contract: every signal the live doctor and the dashboard read has an alias, every alias of the
reference runtime is a metric the runtime really exposes, and the vLLM and Dynamo aliases are names those systems
really expose (recorded from vLLM 0.32.0 on CPU and Dynamo 1.6.1 in tests/live/fixtures, or read in a release's
source: fixtures/released-metric-names.yml). A dashboard column that
reads a signal nobody emits fails here, not on a user's screen."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import ROOT

pytest.importorskip("prometheus_client")

READERS = {"total": 0, "delta": 0, "rate": 0, "by_label": 0, "quantile": 0, "worker_rate": 1, "worker_total": 1, "workers_delta": 0}
FUNCTIONS = {"everywhere": 1, "increase_everywhere": 1}  # the live rules' helpers (doctor/rules/live/_signals.py): (snap or ctx, signal)
FIXTURES = Path(__file__).parent / "fixtures"


def signals_read(folder: Path) -> dict[str, set[str]]:
    """Signal name -> files that read it: string arguments of the window's readers and `signals[...]`/`.get(...)`."""
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                attr = node.func.attr
                pos = READERS.get(attr)
                if pos is not None and len(node.args) > pos and isinstance(node.args[pos], ast.Constant) and isinstance(node.args[pos].value, str):
                    name = node.args[pos].value
                elif attr == "get" and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "signals":
                    arg = node.args[0] if node.args else None
                    name = arg.value if isinstance(arg, ast.Constant) else None
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS:
                pos = FUNCTIONS[node.func.id]
                if len(node.args) > pos and isinstance(node.args[pos], ast.Constant):
                    name = node.args[pos].value
            elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "signals":
                name = node.slice.value if isinstance(node.slice, ast.Constant) else None
            elif isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant) and isinstance(node.left.value, str):
                if any(isinstance(c, ast.Attribute) and c.attr == "signals" for c in node.comparators):
                    name = node.left.value
            if isinstance(name, str):
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def exposed(text: str) -> set[str]:
    from disagg.doctor.live.promtext import parse

    return {name for name, _, _ in parse(text)}


def runtime_exposition() -> set[str]:
    """What the reference runtime's frontend and a worker expose, from the classes the runtime runs."""
    from prometheus_client import CollectorRegistry, generate_latest

    from disagg.runtime.metrics import FrontendMetrics, WorkerMetrics

    registry = CollectorRegistry()
    front, worker = FrontendMetrics(registry), WorkerMetrics(registry, "prefill-0", "prefill")
    for hist in (front.prompt_len, front.ttft):
        hist.observe(1)
    front.kv_failures.labels(reason="timeout").inc()
    front.errors.labels(code="500").inc()
    front.worker_info.labels(worker_id="prefill-0", role="prefill", pid="1", device="cpu").set(1)
    for metric in (front.worker_up, front.worker_requests):
        metric.labels(worker_id="prefill-0", role="prefill")
    front.policy.labels(remote_prefill="true", conditional_disagg="true", max_local_prefill_length="10", max_prefill_queue_size="3").set(1)
    worker.kv_refused.labels(reason="block_size").inc()
    return exposed(generate_latest(registry).decode())


def test_every_signal_the_doctor_and_dashboard_read_has_an_alias():
    from disagg.doctor.live.aliases import TABLES

    known = set().union(*(t.keys() for t in TABLES.values()))
    read = signals_read(ROOT / "doctor")
    assert read, "the scan found no reads: the window's reader names changed"
    missing = {s: sorted(f) for s, f in read.items() if s not in known}
    assert not missing, f"signals read but defined in no alias table: {missing}"


def test_the_dashboard_reads_only_what_the_reference_runtime_emits():
    from disagg.doctor.live.aliases import DISAGG

    read = signals_read(ROOT / "doctor" / "dashboard")
    assert "prompt_tokens_computed" in read  # the "prefill tok/s" column
    assert {s for s in read if s not in DISAGG} == set()


def test_every_reference_runtime_alias_is_exposed_by_the_runtime():
    from disagg.doctor.live.aliases import DISAGG

    names = runtime_exposition()
    for signal, candidates in DISAGG.items():
        assert candidates[0][0] in names, f"{signal}: the runtime exposes no {candidates[0][0]}"


def test_the_contract_lists_every_metric_the_runtime_exposes():
    from disagg.schemas.metrics import FRONTEND, WORKER

    contract = {m.name for m in [*FRONTEND.values(), *WORKER.values()]}
    suffixes = ("_total", "_bucket", "_sum", "_count", "_created")
    for name in runtime_exposition():
        base = next((name[: -len(s)] for s in suffixes if name.endswith(s) and name[: -len(s)] in contract), name)
        assert base in contract, f"{name} is exposed but not in schemas/metrics.py"


RECORDINGS = {"vllm": "vllm-0.32.0-*.prom", "dynamo": "dynamo-1.6.1-*.prom"}


def released() -> dict:
    import yaml

    return yaml.safe_load((FIXTURES / "released-metric-names.yml").read_text())


@pytest.mark.parametrize("system", ["vllm", "dynamo", "sglang", "llm-d"])
def test_each_alias_names_a_metric_a_release_exposes(system):
    """The newest alias of each signal exists in a recording of that release or in a release's source
    (fixtures/released-metric-names.yml names the tag and file); older names follow it in the list. A system without
    a recording (llm-d) has every alias checked, the deprecated names included."""
    from disagg.doctor.live.aliases import TABLES

    names = set().union(*(exposed(p.read_text()) for p in FIXTURES.glob(RECORDINGS[system]))) if system in RECORDINGS else set()
    names |= set(released()["names"].get(system, {}))
    assert names
    missing = {signal: c[0][0] for signal, c in TABLES[system].items() if c[0][0] not in names}
    assert not missing, f"{system} aliases naming metrics no recording or release source has: {missing}"
    if system not in RECORDINGS and system != "sglang":
        every = {name for c in TABLES[system].values() for name, _, _ in c}
        assert every <= names, f"{system}: aliases without a release source: {every - names}"


def test_every_release_fact_names_its_source_and_is_read():
    """Each name in released-metric-names.yml comes from a named tag, and an alias reads it (no dead facts)."""
    from disagg.doctor.live.aliases import TABLES

    data = released()
    for source in data["sources"].values():
        assert source["repo"].count("/") == 1 and source["ref"] and source["read"]
    for system, names in data["names"].items():
        aliased = {name for c in TABLES[system].values() for name, _, _ in c}
        for name, source in names.items():
            assert source in data["sources"], f"{name}: unknown source {source}"
            assert name in aliased, f"{name} ({system}) is in the release list but no alias reads it"


def test_the_prometheus_query_asks_for_every_system_the_aliases_read():
    import re

    from disagg.doctor.live.aliases import PREFIXES
    from disagg.doctor.live.prometheus import NAMES

    for prefix in PREFIXES.values():
        assert re.fullmatch(NAMES, prefix + "requests_total")
    assert not re.fullmatch(NAMES, "python_gc_objects_collected_total")
