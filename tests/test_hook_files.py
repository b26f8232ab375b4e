"""Files as the pre-commit hook hands them: a named file whose pair partner is not among the files given (the doctor
reads the other side from the file's folder, git's tracked files there in a work tree, and reports only the named
file), and files that are no serving config (skipped, with the reason under -v)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from conftest import FIXTURES


def deployment(tmp_path: Path, decode_model: str = "Qwen/Qwen3-14B") -> Path:
    shutil.copytree(FIXTURES / "precommit-pair" / "deploy", tmp_path / "deploy")
    decode = tmp_path / "deploy" / "decode.yaml"
    decode.write_text(decode.read_text().replace('"Qwen/Qwen3-8B"', f'"{decode_model}"'))
    return tmp_path


def test_the_other_side_is_read_from_the_folder_and_only_the_named_file_is_reported(cli, tmp_path):
    deployment(tmp_path)
    r = cli("doctor", "deploy/decode.yaml", "-v")
    assert r.code == 1, r.out
    assert "deploy/decode.yaml:16:39: DG205 [error]" in r.out
    assert "deploy/prefill.yaml:16:39: DG205" not in r.out  # the partner's own end is not reported: it was not named
    assert "read from the same folder" in r.out
    assert "1 prefill/decode pair checked in 1 file" in r.out


def test_no_partner_search_checks_the_named_file_alone(cli, tmp_path):
    deployment(tmp_path)
    r = cli("doctor", "deploy/decode.yaml", "--no-partner-search")
    assert r.code == 0, r.out
    assert "DG405 [info] not checked" in r.out and "DG205" not in r.out


def test_in_a_git_work_tree_only_tracked_files_are_partners(cli, tmp_path):
    deployment(tmp_path)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True, timeout=30)
    subprocess.run(["git", "add", "deploy/decode.yaml"], cwd=tmp_path, check=True, timeout=30)
    assert "DG205" not in cli("doctor", "deploy/decode.yaml").out  # prefill.yaml is untracked: a scratch file, no partner
    subprocess.run(["git", "add", "deploy/prefill.yaml"], cwd=tmp_path, check=True, timeout=30)
    assert "deploy/decode.yaml:16:39: DG205 [error]" in cli("doctor", "deploy/decode.yaml").out


def test_a_consistent_partner_passes(cli, tmp_path):
    deployment(tmp_path, decode_model="Qwen/Qwen3-8B")
    r = cli("doctor", "deploy/decode.yaml")
    assert r.code == 0 and "All checks passed: 1 prefill/decode pair checked in 1 file" in r.out, r.out


def test_a_file_that_is_no_serving_config_is_skipped_with_the_reason(cli, write):
    write("site_name: docs\nnav: [index.md]\n", "mkdocs.yml")
    r = cli("doctor", "--skip-unrecognized", "-v", "mkdocs.yml")
    assert r.code == 0
    assert "mkdocs.yml: skipped: not a disaggregated-serving config: not a recognised config" in r.out


def test_a_web_apps_compose_file_is_no_serving_config(cli, write):
    write("services:\n  web:\n    image: nginx:1.27\n  api:\n    command: [gunicorn, app:app]\n  db:\n    image: postgres:16\n", "docker-compose.yaml")
    r = cli("doctor", "-v", "docker-compose.yaml")
    assert r.code == 0
    assert "docker-compose.yaml: skipped: not a serving config: read as compose, but no service or container runs an engine" in r.out
    assert "no prefill/decode pair was formed" not in r.out
