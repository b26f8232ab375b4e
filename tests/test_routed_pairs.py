"""A PD router's URLs say which servers of a folder's files exchange KV, whatever else they differ in: SGLang's router
sends each request to one --prefill and one --decode server without comparing their models, so a prefill script and
a decode script that serve different models behind one router are a pair, and DG205 reports the mismatch."""

from __future__ import annotations

import os
from pathlib import Path

from disagg.doctor import engine
from disagg.doctor.context import LintOptions
from disagg.doctor.engine import lint_paths
from disagg.doctor.registry import default_registry

RULES = [r for r in default_registry() if not r.live]


def _server(mode: str, model: str, host: str, port: int) -> str:
    return (f"python3 -m sglang.launch_server --model-path {model} --disaggregation-mode {mode} \\\n"
            f"  --host {host} --port {port} --tp 4\n")


ROUTER = """python3 -m sglang_router.launch_router --pd-disaggregation \\
  --prefill http://192.168.7.21:31000 --decode http://192.168.7.22:32000 --port 9000
"""


def _folder(tmp_path: Path, decode_model: str = "Qwen/Qwen3-32B", bind: tuple[str, str] = ("192.168.7.21", "192.168.7.22"),
            router: str = ROUTER) -> Path:
    d = tmp_path / "pd"
    d.mkdir()
    (d / "p.sh").write_text("#!/bin/bash\n" + _server("prefill", "Qwen/Qwen3-32B", bind[0], 31000))
    (d / "d.sh").write_text("#!/bin/bash\n" + _server("decode", decode_model, bind[1], 32000))
    if router:
        (d / "lb.sh").write_text("#!/bin/bash\n" + router)
    return d


def _codes(results, severity: str) -> set[str]:
    return {f.code for r in results for f in r.findings if f.severity.label == severity}


def test_servers_a_router_names_by_their_bound_address_are_a_pair_even_when_the_models_differ(tmp_path):
    results = lint_paths([str(_folder(tmp_path, decode_model="Qwen/Qwen3-8B"))], RULES, LintOptions())
    assert "DG205" in _codes(results, "error")
    pair = next(p for r in results for p in r.pairs)
    assert "lb.sh sends prefill to http://192.168.7.21:31000 and decode to http://192.168.7.22:32000" in pair.why


def test_the_same_folder_without_the_router_is_not_paired_across_models(tmp_path):
    results = lint_paths([str(_folder(tmp_path, decode_model="Qwen/Qwen3-8B", router=""))], RULES, LintOptions())
    assert "DG205" not in _codes(results, "error") | _codes(results, "warning") | _codes(results, "info")
    assert not any(r.pairs for r in results)


def test_a_wildcard_bind_in_another_file_is_not_the_address_a_router_names(tmp_path):
    # 0.0.0.0 in another script may be any machine: the router's 192.168.7.21 says nothing of it
    results = lint_paths([str(_folder(tmp_path, decode_model="Qwen/Qwen3-8B", bind=("0.0.0.0", "0.0.0.0")))], RULES, LintOptions())
    assert "DG205" not in _codes(results, "error")
    assert not any(r.pairs for r in results)


def test_a_router_naming_another_port_links_nothing(tmp_path):
    router = ROUTER.replace(":32000", ":32001")
    results = lint_paths([str(_folder(tmp_path, decode_model="Qwen/Qwen3-8B", router=router))], RULES, LintOptions())
    assert "DG205" not in _codes(results, "error")


def test_checked_in_processes_the_router_file_still_links_the_pair(tmp_path, monkeypatch):
    folder = _folder(tmp_path, decode_model="Qwen/Qwen3-8B")
    monkeypatch.setattr(engine, "PARALLEL_MIN_FILES", 2)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    results = lint_paths([str(folder)], RULES, LintOptions())
    assert "DG205" in _codes(results, "error")


def test_a_decode_file_given_alone_finds_its_prefill_through_the_router_of_its_folder(tmp_path, cli):
    folder = _folder(tmp_path, decode_model="Qwen/Qwen3-8B")
    r = cli("doctor", str(folder / "d.sh"))
    assert "DG205 [error]" in r.out and r.code == 1, r.out
    r = cli("doctor", "--no-partner-search", str(folder / "d.sh"))
    assert "DG205" not in r.out, r.out
