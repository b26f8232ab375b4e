"""A launch script saved with CRLF line ends is read as the shell runs it: a `\\` before the carriage return continues
nothing, so the server starts without the flags on the lines after it (DG406). Fixture written for these tests."""

from __future__ import annotations

from pathlib import Path

from disagg.doctor.context import LintOptions
from disagg.doctor.engine import lint_text
from disagg.doctor.registry import default_registry

FIXTURE = Path(__file__).parent / "fixtures" / "shell" / "crlf-continuation.sh"
RULES = [r for r in default_registry() if not r.live]


def lint(text: str):
    return lint_text(str(FIXTURE), text, RULES, LintOptions())


def test_a_crlf_script_cuts_the_continued_command_where_the_shell_does():
    raw = FIXTURE.read_bytes()
    assert b"\\\r\n" in raw  # the fixture must keep its CRLF ends (.gitattributes: -text)
    r = lint(raw.decode())
    first, second = sorted((w for w in r.deployment.engines() if w.program == "sglang"), key=lambda w: w.span.line)
    assert first.role != "prefill"  # --disaggregation-mode prefill never reaches it
    assert "disaggregation-mode" not in first.flags and second.role == "decode"
    [f] = [f for f in r.findings if f.code == "DG406"]
    assert (f.severity.label, f.line, f.column) == ("error", 4, 32)
    assert "3 lines after it" in f.message and "`--model-path $MODEL`" in f.message


def test_the_same_script_with_lf_ends_has_no_finding_and_pairs():
    r = lint(FIXTURE.read_bytes().decode().replace("\r\n", "\n"))
    assert "DG406" not in {f.code for f in r.findings}
    assert sorted(w.role for w in r.deployment.engines()) == ["decode", "prefill"] and len(r.pairs) == 1


def test_an_escaped_backslash_before_the_cr_is_no_continuation_to_report():
    text = 'python -m sglang.launch_server --model-path m --disaggregation-mode decode \\\\\r\necho done\r\n'
    assert "DG406" not in {f.code for f in lint(text).findings}
