"""Packaging and layering: subpackages of `disagg` only, layers respected, no heavy import on the static path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import EXAMPLES, ROOT


@pytest.mark.parametrize("name", ["runtime", "doctor", "schemas"])
def test_root_folders_are_not_top_level_modules(name, tmp_path):
    r = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode != 0 and "ModuleNotFoundError" in r.stderr


def test_subpackages_import_under_disagg(tmp_path):
    r = subprocess.run([sys.executable, "-c", "import disagg.runtime, disagg.doctor, disagg.schemas.routing"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_static_doctor_path_loads_no_heavy_module(tmp_path):
    code = (
        "import sys, json; from disagg.cli import main;"
        f"main(['doctor', {str(EXAMPLES / 'seed-broken.yaml')!r}, '--exit-zero', '--workload', 'isl=200']);"
        "print(json.dumps(sorted(sys.modules)))"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    loaded = set(json.loads(r.stdout.splitlines()[-1]))
    heavy = {"vllm", "torch", "nixl", "textual", "pydantic", "rich", "numpy", "dataclasses"} & loaded
    assert not heavy, heavy


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
