"""The CI integrations as users meet them. The pre-commit hook: the real `pre-commit` tool installs this checkout and runs the hook over a
repository where serving configs sit beside YAML that is someone else's (mkdocs, Helm templates, Ansible,
CloudFormation, a CI workflow) and a build script. Only the broken serving config may fail it. The GitHub workflow example: valid for GitHub (the workflow JSON
Schema that check-jsonschema vendors), and it installs this project from its repository at a pinned ref."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES, ROOT

pytestmark = pytest.mark.slow

PRE_COMMIT = shutil.which("pre-commit") or str(Path(sys.executable).with_name("pre-commit"))


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """One pre-commit home for the module, so the hook's environment is built once."""
    if not Path(PRE_COMMIT).exists():
        pytest.skip("pre-commit is not installed (it comes with the test extra)")
    return tmp_path_factory.mktemp("pre-commit-home")


def repo_with(tmp_path: Path, drop: tuple[str, ...] = ()) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURES / "precommit-repo", repo)
    for rel in drop:
        (repo / rel).unlink()
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "fixture")
    return repo


def try_repo(repo: Path, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "PRE_COMMIT_COLOR": "never", "GIT_CONFIG_GLOBAL": os.devnull}
    return subprocess.run([PRE_COMMIT, "try-repo", str(ROOT), "disagg-doctor", "--all-files", "--verbose"],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=600)


def test_the_hook_fails_only_on_the_broken_serving_config(tmp_path, home):
    r = try_repo(repo_with(tmp_path), home)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "deploy/disagg-broken.yaml:15:1: DG101 [error]" in out
    reported = {m.group(1) for m in re.finditer(r"^(\S+):\d+:\d+: (?:DG\d+|error)", out, re.M)}
    assert reported == {"deploy/disagg-broken.yaml"}, out  # someone else's YAML is skipped, never an error


def test_the_hook_passes_once_the_config_is_fixed(tmp_path, home):
    r = try_repo(repo_with(tmp_path, drop=("deploy/disagg-broken.yaml",)), home)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Passed" in r.stdout


def pair_repo(tmp_path: Path) -> Path:
    """Prefill in deploy/prefill.yaml and decode in deploy/decode.yaml, both on Qwen/Qwen3-8B, committed."""
    repo = tmp_path / "pair"
    shutil.copytree(FIXTURES / "precommit-pair", repo)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "fixture")
    return repo


def run_hook_on_staged(repo: Path, home: Path) -> subprocess.CompletedProcess:
    """The hook as a commit runs it: over the staged files only (no --all-files)."""
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "PRE_COMMIT_COLOR": "never", "GIT_CONFIG_GLOBAL": os.devnull}
    return subprocess.run([PRE_COMMIT, "try-repo", str(ROOT), "disagg-doctor", "--verbose"], cwd=repo, env=env, capture_output=True, text=True, timeout=600)


def test_a_commit_that_changes_one_side_of_a_pair_is_checked_against_the_other(tmp_path, home):
    repo = pair_repo(tmp_path)
    decode = repo / "deploy" / "decode.yaml"
    decode.write_text(decode.read_text().replace('"Qwen/Qwen3-8B"', '"Qwen/Qwen3-14B"'))
    git(repo, "add", "deploy/decode.yaml")
    r = run_hook_on_staged(repo, home)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert re.search(r"^deploy/decode\.yaml:16:\d+: DG205 \[error\] .*'Qwen/Qwen3-8B'.*'Qwen/Qwen3-14B'", out, re.M), out
    assert "see: deploy/prefill.yaml:16:" in out, out
    reported = {m.group(1) for m in re.finditer(r"^(\S+):\d+:\d+: DG\d+", out, re.M)}
    assert reported == {"deploy/decode.yaml"}, out  # the partner read from the folder is not reported on its own


def test_a_one_sided_change_that_keeps_the_pair_consistent_passes(tmp_path, home):
    repo = pair_repo(tmp_path)
    decode = repo / "deploy" / "decode.yaml"
    decode.write_text(decode.read_text().replace('replicas: 1', 'replicas: 2'))
    git(repo, "add", "deploy/decode.yaml")
    r = run_hook_on_staged(repo, home)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Passed" in r.stdout


def test_the_hook_runs_serially_so_a_pair_is_never_split_across_batches():
    import yaml

    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert [h["require_serial"] for h in hooks if h["id"] == "disagg-doctor"] == [True]


def run_tool(*argv: str) -> subprocess.CompletedProcess:
    exe = shutil.which(argv[0]) or str(Path(sys.executable).with_name(argv[0]))
    if not Path(exe).exists():
        pytest.skip(f"{argv[0]} is not installed (it comes with the test extra)")
    return subprocess.run([exe, *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_the_hook_manifest_is_valid_for_pre_commit():
    r = run_tool("pre-commit", "validate-manifest", ".pre-commit-hooks.yaml")
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_workflow_example_is_a_valid_github_workflow():
    r = run_tool("check-jsonschema", "--builtin-schema", "vendor.github-workflows", "examples/github-workflow.yml")
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_workflow_example_installs_this_project_at_a_pinned_ref():
    import yaml

    wf = yaml.safe_load((ROOT / "examples" / "github-workflow.yml").read_text())
    installs = [s["run"] for job in wf["jobs"].values() for s in job["steps"] if "pip install" in s.get("run", "")]
    assert installs, "the workflow installs nothing"
    for cmd in installs:
        # Never PyPI's `disagg` (not this project): a git URL with a ref.
        assert re.search(r"disagg @ git\+\$\{DISAGG_REPOSITORY\}@\$\{DISAGG_REF\}", cmd), cmd
    ref = wf["env"]["DISAGG_REF"]
    assert ref not in ("main", "master", "HEAD") and re.fullmatch(r"v\d+\.\d+\.\d+|[0-9a-f]{40}", ref), ref
