"""The folder search (doctor/files.py collect_paths): CI dot-folders are entered, folders that hold no config of the
user's (version control, caches, virtual environments under any name) are not. Files written here, in our words."""

from __future__ import annotations

from pathlib import Path

from disagg.doctor.files import NO_CONFIG_FOLDERS, collect_paths

PREFILL = "vllm serve Qwen/Qwen3-8B --port 8100 --kv-transfer-config '{\"kv_connector\":\"NixlConnector\",\"kv_role\":\"kv_both\"}'\n"


def _put(root: Path, rel: str, text: str = PREFILL) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def _found(root: Path, exclude=()) -> set[str]:
    return {str(Path(p).relative_to(root)) for p, explicit in collect_paths([str(root)], exclude) if not explicit}


def test_ci_dot_folders_are_searched(tmp_path):
    for rel in (".buildkite/k8s/prefill.yaml", ".ci/scripts/pd.sh", ".gitlab/sanity.sh", ".github/workflows/pd.yml", "plain/pd.sh"):
        _put(tmp_path, rel)
    assert _found(tmp_path) == {".buildkite/k8s/prefill.yaml", ".ci/scripts/pd.sh", ".gitlab/sanity.sh", ".github/workflows/pd.yml", "plain/pd.sh"}


def test_version_control_caches_and_installed_packages_are_not(tmp_path):
    for name in (".git", ".hg", ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache", "__pycache__", "node_modules", ".terraform"):
        assert name in NO_CONFIG_FOLDERS
        _put(tmp_path, f"{name}/inner/pd.sh")
    _put(tmp_path, "kept/pd.sh")
    assert _found(tmp_path) == {"kept/pd.sh"}


def test_a_virtual_environment_is_known_by_its_pyvenv_cfg_whatever_its_name(tmp_path):
    _put(tmp_path, "py311-env/pyvenv.cfg", "home = /usr/bin\n")
    _put(tmp_path, "py311-env/lib/python3.11/site-packages/pkg/launch.sh")
    _put(tmp_path, ".env-gpu/pyvenv.cfg", "home = /usr/bin\n")
    _put(tmp_path, ".env-gpu/bin/run.sh")
    _put(tmp_path, "envs/pd.sh")  # a folder named like an environment, without pyvenv.cfg, is the user's
    assert _found(tmp_path) == {"envs/pd.sh"}


def test_dot_files_stay_unread_and_exclude_still_applies_to_dot_folders(tmp_path):
    _put(tmp_path, ".ci/.hidden.sh")
    _put(tmp_path, ".ci/pd.sh")
    _put(tmp_path, ".gitlab/pd.sh")
    assert _found(tmp_path) == {".ci/pd.sh", ".gitlab/pd.sh"}
    assert _found(tmp_path, exclude=[".gitlab"]) == {".ci/pd.sh"}


def test_a_named_file_inside_a_skipped_folder_is_still_read(tmp_path):
    p = _put(tmp_path, ".tox/pd.sh")
    assert collect_paths([str(p)]) == [(str(p), True)]


def test_slurm_job_scripts_are_read_when_their_first_line_runs_a_shell(tmp_path):
    """sbatch runs a job script by its `#!` line (it refuses one without): a *.slurm / *.sbatch file that names a shell
    is a shell script and is read; one that names another interpreter, or none, is not ours to read."""
    body = "#SBATCH --nodes=2\n" + PREFILL
    _put(tmp_path, "jobs/pd.slurm", "#!/bin/bash\n" + body)
    _put(tmp_path, "jobs/env.sbatch", "#!/usr/bin/env -S bash -l\n" + body)
    _put(tmp_path, "jobs/train.slurm", "#!/usr/bin/env python3\nprint('train')\n")
    _put(tmp_path, "jobs/notes.slurm", body)
    assert _found(tmp_path) == {"jobs/pd.slurm", "jobs/env.sbatch"}


def test_a_slurm_job_script_is_read_as_the_shell_script_it_is(tmp_path):
    from disagg.doctor.context import LintOptions
    from disagg.doctor.files import read_path

    p = _put(tmp_path, "jobs/pd.slurm", "#!/bin/bash\n#SBATCH --nodes=1\n" + PREFILL)
    result = read_path(str(p), False, LintOptions(), "auto")
    assert result.error is None and result.skipped is None
    [worker] = result.deployment.workers
    assert worker.engine == "vllm" and worker.span.line == 3
