"""SGLang's own console command, `sglang serve ...`, is SGLang's server with the server arguments of
`python -m sglang.launch_server` (fixture tests/fixtures/readers/sglang-serve.sh)."""

from __future__ import annotations

from test_readers import codes, lint, roles


def test_sglang_serve_is_sglangs_server():
    r = lint("sglang-serve.sh")
    assert roles(r) == [("decode", "--disaggregation-mode decode"), ("prefill", "--disaggregation-mode prefill")]
    assert {w.program for w in r.deployment.workers} == {"sglang"}
    assert {w.known("model") for w in r.deployment.workers} == {"Qwen/Qwen3-8B"}  # `sglang serve MODEL` too
    assert "DG611" in codes(r, "error")
