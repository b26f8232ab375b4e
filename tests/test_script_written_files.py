"""Engine config files a launch script writes with a here-document are read as those files, with positions in the
script (fixtures in tests/fixtures/shell/, written for these tests)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from disagg.schemas import knowledge
from disagg.schemas.model import Unknown
from disagg.schemas.readers import read_script

HERE = Path(__file__).resolve().parent / "fixtures" / "shell"


def script(text: str):
    return read_script("run.sh", textwrap.dedent(text), knowledge.new_target())


def test_trtllm_engine_configs_written_by_the_script_are_read_where_the_script_writes_them():
    path = HERE / "trtllm-heredoc-configs.sh"
    dep = read_script(str(path), path.read_text(), knowledge.new_target())
    ctx, gen = dep.workers
    assert (ctx.known("tp"), ctx.settings["tp"].span.line, ctx.known("transfer_backend"), ctx.settings["transfer_backend"].span.line) == (2, 5, "UCX", 7)
    assert (gen.known("tp"), gen.settings["tp"].span.line) == (1, 12)
    # `<<EOF` expands ${TOKENS} when the script runs: unknown, never the text of the reference
    assert isinstance(ctx.settings["block_size"].value, Unknown)
    assert not ctx.notes and not gen.notes


def test_a_quoted_tab_stripped_here_document_keeps_columns_and_literal_text():
    dep = script("""\
        if true; then
        \tcat <<-'EOF' > /tmp/e.yaml
        \t\ttensor_parallel_size: 4
        \t\tkv_cache_config:
        \t\t  tokens_per_block: $X
        \tEOF
        fi
        trtllm-serve m --port 8001 --extra_llm_api_options /tmp/e.yaml &
        """)
    [w] = dep.workers
    span = w.settings["tp"].span
    assert (w.known("tp"), span.line, span.column) == (4, 3, 25)
    assert w.known("block_size") == "$X"  # quoted: the shell writes `$X` as it is


def test_a_file_the_script_does_not_write_stays_unread_and_other_engines_are_not_given_trtllm_keys():
    dep = script("""\
        cat > /tmp/other.yaml <<EOF
        tensor_parallel_size: 4
        EOF
        trtllm-serve m --port 8001 --extra_llm_api_options /tmp/engine.yaml &
        vllm serve m --port 8002 --config /tmp/other.yaml &
        """)
    trt, vllm = dep.workers
    assert trt.known("tp") is None and trt.notes == ["engine settings are in /tmp/engine.yaml, which is not in this file"]
    assert vllm.known("tp") is None
