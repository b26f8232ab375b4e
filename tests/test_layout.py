"""Packaging and layering: subpackages of `disagg` only, layers respected, no heavy import on the static path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import EXAMPLES, ROOT


@pytest.mark.parametrize("name", ["runtime", "doctor", "schemas"])
def test_root_folders_are_not_top_level_modules(name, tmp_path):
    r = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode != 0 and "ModuleNotFoundError" in r.stderr


def test_subpackages_import_under_disagg(tmp_path):
    r = subprocess.run([sys.executable, "-c", "import disagg.runtime, disagg.doctor, disagg.schemas.routing"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def _modules_after_doctor(tmp_path, *args: str) -> set[str]:
    """The modules a fresh interpreter holds after `disagg doctor ARGS`."""
    code = f"import sys, json; from disagg.cli import main; main({['doctor', *args]!r}); print(json.dumps(sorted(sys.modules)))"
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    return set(json.loads(r.stdout.splitlines()[-1]))


def test_static_doctor_path_loads_no_heavy_module(tmp_path):
    loaded = _modules_after_doctor(tmp_path, str(EXAMPLES / "seed-broken.yaml"), "--exit-zero", "--workload", "isl=200")
    heavy = {"vllm", "torch", "nixl", "textual", "pydantic", "rich", "numpy", "dataclasses"} & loaded
    assert not heavy, heavy


def test_doctor_on_a_file_whose_workers_pair_starts_no_process_machinery(tmp_path):
    # subprocess (and threading with it) is for git when a worker lacks a partner (doctor/partners.py): ~8 ms of a
    # cold start otherwise (issue 23)
    loaded = _modules_after_doctor(tmp_path, str(EXAMPLES / "disagg-router.yaml"), "--exit-zero")
    assert "yaml" in loaded  # the file was read
    assert "subprocess" not in loaded


def test_doctor_on_a_yaml_file_loads_no_shell_reader(tmp_path):
    # the launch-script reader (lexer, interpreter, branches: ~20 ms by -X importtime) is for scripts and for the
    # commands inside manifests; a Dynamo v0 YAML file needs none of it (issue 23: one file's cold start)
    loaded = _modules_after_doctor(tmp_path, str(EXAMPLES / "seed-broken.yaml"), "--exit-zero")
    assert "disagg.schemas.readers.dynamo_v0" in loaded  # the file was read
    shell = {m for m in loaded if m.startswith(("disagg.schemas.shell", "disagg.schemas.readers.justfile"))}
    assert not shell, shell


def test_import_layers_hold(tmp_path):
    """import-linter over the source laid out as installed (disagg/{schemas,doctor,runtime}), whatever the install mode."""
    lint = shutil.which("lint-imports", path=os.path.dirname(sys.executable)) or shutil.which("lint-imports")
    if lint is None:
        pytest.skip("import-linter is not installed (pip install '.[test]')")
    tree = tmp_path / "disagg"
    shutil.copytree(ROOT / "disagg", tree, ignore=shutil.ignore_patterns("__pycache__"))
    for sub in ("schemas", "doctor", "runtime"):
        shutil.copytree(ROOT / sub, tree / sub, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    r = subprocess.run([lint, "pyproject.toml", "--no-cache"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Contracts: 4 kept, 0 broken." in r.stdout, r.stdout


def test_readme_rules_table_is_generated_from_the_registry():
    from disagg.cli import rules_markdown
    from disagg.doctor.registry import default_registry

    readme = (ROOT / "README.md").read_text()
    assert rules_markdown(default_registry()) in readme, "README rules table is stale: paste `disagg rules --output-format markdown`"


def _import_graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports anywhere in its text (top level or inside a function: a lazy import
    is still a circle, it only moves the failure to run time)."""
    import ast

    mods: dict[str, tuple[Path, bool]] = {}
    for top in ("disagg", "schemas", "doctor", "runtime"):
        for path in (ROOT / top).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_init = parts[-1] == "__init__"
            if is_init:
                parts = parts[:-1]
            mods[".".join(parts if parts[0] == "disagg" else ["disagg", *parts])] = (path, is_init)
    graph: dict[str, set[str]] = {}
    for name, (path, is_init) in mods.items():
        package = name if is_init else name.rsplit(".", 1)[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in mods)
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module or ""
                for a in node.names:
                    deps.add(f"{module}.{a.name}" if f"{module}.{a.name}" in mods else module)
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_no_import_circles():
    """No module of ours imports, directly or through others, a module that imports it (engine <-> parallel and
    live.collect <-> live.prometheus were such circles: the shared piece now has its own module)."""
    assert _cycles(_import_graph()) == []


def test_the_circle_check_sees_a_lazy_circle():
    graph = _import_graph()
    assert "disagg.doctor.check" in graph["disagg.doctor.engine"] and "disagg.doctor.parallel" in graph["disagg.doctor.engine"]
    graph["disagg.doctor.check"] = graph["disagg.doctor.check"] | {"disagg.doctor.parallel"}
    assert _cycles(graph) == [["disagg.doctor.check", "disagg.doctor.parallel"]]


def test_tests_import_the_installed_package_not_the_source_folders():
    """CI runs `pytest` (not `python -m pytest`), so the repository root is not on sys.path: `from schemas import x`
    passes here and fails to collect there (it did, twice)."""
    import re

    bad = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "tests").rglob("*.py")
           for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
           if re.match(r"\s*(from|import) (schemas|doctor|runtime|examples)(\.|\s|$)", line)]
    assert not bad, f"import disagg.<package> instead: {bad}"
