"""The summary's "N prefill/decode pairs checked" counts the pairs the rules compared, each once, in one process or
several."""

from __future__ import annotations

import formats

from disagg.doctor.context import LintOptions
from disagg.doctor.engine import lint_paths
from disagg.doctor.output.summary import pairs_checked
from disagg.doctor.parallel import lint_in_processes
from disagg.doctor.registry import default_registry

RULES = [r for r in default_registry() if not r.live]


def _folder(tmp_path):
    for name, text in formats.two_files(dict(formats.BASE), dict(formats.BASE)).items():
        (tmp_path / name).write_text(text)
    for name, text in formats.script(dict(formats.BASE), dict(formats.BASE)).items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_a_pair_across_files_counts_once(cli, tmp_path):
    folder = _folder(tmp_path)
    doc = cli("doctor", folder, "--output-format", "json", "--exit-zero").json()
    across = [p for f in doc["files"] for p in f["pairs"] if p["decode_path"] != f["path"]]
    assert len(across) == 1
    assert doc["summary"]["pairs_checked"] == 2  # the pair across the two YAML files and the script's own
    assert "2 prefill/decode pairs checked in 3 files" in cli("doctor", folder, "--exit-zero").out


def test_several_processes_count_what_one_process_counts(tmp_path):
    folder = _folder(tmp_path)
    items = [(str(p), False) for p in sorted(folder.iterdir())]
    one = lint_paths([str(folder)], RULES, LintOptions())
    many = lint_in_processes(items, RULES, LintOptions(), "auto")
    assert pairs_checked(one) == pairs_checked(many) == 2


def test_two_pairs_with_one_decode_and_same_named_prefills_count_twice():
    from disagg.schemas.model import Pair
    from disagg.schemas.source import Span

    class W:
        def __init__(self, name, role, line):
            self.name, self.role, self.path, self.span = name, role, "run.sh", Span(line, 1, line, 5)

    class R:
        pairs = [Pair(W("d", "decode", 1), W("vllm", "prefill", 2), "same file"), Pair(W("d", "decode", 1), W("vllm", "prefill", 3), "same file")]

    assert pairs_checked([R(), R()]) == 2


def test_the_verbose_pair_lines_are_the_pairs_the_summary_counts(cli, tmp_path):
    # a loop starts two prefill processes from one line and two decode processes from another: one pair of places
    script = tmp_path / "loop.sh"
    script.write_text(
        "for i in 0 1; do\n"
        "  CUDA_VISIBLE_DEVICES=$i vllm serve m --port $((8100+i)) --kv-transfer-config '{\"kv_connector\":\"NixlConnector\",\"kv_role\":\"kv_producer\"}' &\n"
        "done\n"
        "for i in 2 3; do\n"
        "  CUDA_VISIBLE_DEVICES=$i vllm serve m --port $((8200+i)) --kv-transfer-config '{\"kv_connector\":\"NixlConnector\",\"kv_role\":\"kv_consumer\"}' &\n"
        "done\n")
    out = cli("doctor", script, "-v", "--exit-zero").out
    lines = [ln for ln in out.splitlines() if ": checked " in ln]
    assert len(lines) == 1, lines
    assert "1 prefill/decode pair checked in 1 file" in out
