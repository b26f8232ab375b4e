"""bench/corpus/rebuild.py rebuilds the held-out corpus from bare git mirrors and refuses bytes that differ from the
manifest's sha256. No network: a bare repository made in tmp stands in for the upstream mirror."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIELDS = ["file", "split", "repo", "path", "commit", "sha256", "format", "pd", "note"]


def load_rebuild():
    spec = importlib.util.spec_from_file_location("corpus_rebuild", ROOT / "bench" / "corpus" / "rebuild.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def git(*args: str, cwd: Path) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(cwd)}
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout.strip()


@pytest.fixture()
def mirror(tmp_path):
    """A bare mirror laid out as fetch leaves it: <mirror>/owner+name/repo, with one commit of two files."""
    work = tmp_path / "work"
    (work / "deploy").mkdir(parents=True)
    prefill = b"#!/bin/bash\npython -m sglang.launch_server --disaggregation-mode prefill\n"
    decode = b"#!/bin/bash\npython -m sglang.launch_server --disaggregation-mode decode --port 30001\n"
    (work / "deploy" / "prefill.sh").write_bytes(prefill)
    (work / "deploy" / "decode.sh").write_bytes(decode)
    git("init", "-q", cwd=work)
    git("add", ".", cwd=work)
    git("commit", "-qm", "pd", cwd=work)
    commit = git("rev-parse", "HEAD", cwd=work)
    mirrors = tmp_path / "mirrors"
    (mirrors / "someone+pd-demo").mkdir(parents=True)
    git("clone", "-q", "--bare", str(work), str(mirrors / "someone+pd-demo" / "repo"), cwd=tmp_path)
    rows = [
        {"file": f"someone_pd-demo__deploy__{name}.sh", "split": "heldout", "repo": "someone/pd-demo", "path": f"deploy/{name}.sh",
         "commit": commit, "sha256": hashlib.sha256(data).hexdigest(), "format": "script-sglang", "pd": "yes", "note": name}
        for name, data in (("prefill", prefill), ("decode", decode))
    ]
    return mirrors, rows


def write_manifest(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_rebuilds_from_mirror_and_verifies(mirror, tmp_path):
    mirrors, rows = mirror
    rebuild = load_rebuild()
    manifest = write_manifest(tmp_path / "MANIFEST.tsv", rows)
    out = tmp_path / "files"
    assert rebuild.main(["--manifest", str(manifest), "--out", str(out), "--mirror", str(mirrors)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(r["file"] for r in rows)
    assert b"--disaggregation-mode prefill" in (out / rows[0]["file"]).read_bytes()
    assert rebuild.main(["--manifest", str(manifest), "--out", str(out), "--verify-only"]) == 0


def test_detects_sha_mismatch_and_missing(mirror, tmp_path, capsys):
    mirrors, rows = mirror
    rebuild = load_rebuild()
    rows[0]["sha256"] = "0" * 64
    rows.append(dict(rows[1], file="someone_pd-demo__deploy__gone.sh", path="deploy/gone.sh"))
    manifest = write_manifest(tmp_path / "MANIFEST.tsv", rows)
    out = tmp_path / "files"
    assert rebuild.main(["--manifest", str(manifest), "--out", str(out), "--mirror", str(mirrors)]) == 1
    said = capsys.readouterr().out
    assert f"mismatch  {rows[0]['file']}" in said
    assert "missing   someone_pd-demo__deploy__gone.sh" in said
    assert not (out / rows[0]["file"]).exists(), "bytes that differ from the manifest are not written"
    assert (out / rows[1]["file"]).is_file()


def test_verify_only_flags_a_file_edited_in_place(mirror, tmp_path):
    mirrors, rows = mirror
    rebuild = load_rebuild()
    manifest = write_manifest(tmp_path / "MANIFEST.tsv", rows)
    out = tmp_path / "files"
    assert rebuild.main(["--manifest", str(manifest), "--out", str(out), "--mirror", str(mirrors)]) == 0
    (out / rows[1]["file"]).write_bytes(b"edited\n")
    assert rebuild.main(["--manifest", str(manifest), "--out", str(out), "--verify-only"]) == 1


def test_manifest_rows_are_well_formed():
    rebuild = load_rebuild()
    rows = rebuild.read_manifest()
    assert rows, "MANIFEST.tsv is empty"
    excluded = {"LMCache/LMCache", "NVIDIA/TensorRT-LLM", "TonyLi15/sglang-benchmark", "ai-dynamo/dynamo", "highopes/pd-disaggregation-demo",
                "kserve/kserve", "llm-d/llm-d", "llm-d/llm-d-inference-scheduler", "sgl-project/sglang", "vllm-project/vllm"}
    names = set()
    for row in rows:
        assert list(row) == FIELDS
        assert row["split"] in ("dev", "heldout") and row["pd"] in ("yes", "no")
        assert len(row["commit"]) == 40 and all(c in "0123456789abcdef" for c in row["commit"])
        assert len(row["sha256"]) == 64
        assert row["repo"] not in excluded, row["repo"]
        assert row["file"].endswith((".yaml", ".yml", ".sh", ".bash"))
        assert row["file"] not in names
        names.add(row["file"])
