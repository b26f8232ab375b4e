"""Justfiles (schemas/readers/justfile.py): read as the shell script that runs their recipes, each recipe an
alternative; positions stay the Justfile's own (fixtures in tests/fixtures/readers/just/, written for these tests)."""

from __future__ import annotations

from test_readers import HERE, RULES, codes, lint

from disagg.doctor.context import LintOptions
from disagg.doctor.engine import lint_paths
from disagg.doctor.files import collect_paths
from disagg.schemas.formats import is_justfile
from disagg.schemas.readers.justfile import to_shell


def test_justfile_names_are_found_in_folders():
    found = [p for p, _ in collect_paths([str(HERE / "just")])]
    assert any(p.endswith("pd/Justfile") for p in found) and any(p.endswith("deps/pd.just") for p in found)
    assert is_justfile("x/justfile") and is_justfile("a.just") and not is_justfile("Justfile.bak") and not is_justfile("adjust")


def test_the_shell_text_keeps_every_line_and_the_columns_of_recipe_lines():
    text = (HERE / "just" / "pd" / "Justfile").read_text()
    shell = to_shell(text).splitlines()
    src = text.splitlines()
    assert len(shell) == len(src) + 1  # the recipe dispatch is one line past the end
    for a, b in zip(src, shell):
        if a.startswith("    ") and "{{" not in a:
            assert a.lstrip("@- ") == b.lstrip("@- "), (a, b)
        if "{{" in a:
            assert len(a) == len(b) and a.find("vllm") == b.find("vllm") and a.find("--") == b.find("--"), (a, b)


def test_recipes_are_alternatives_and_a_recipe_that_starts_both_is_a_pair():
    r = lint("just/pd/Justfile")
    assert not r.error and not r.skipped and r.deployment.format == "justfile"
    engines = sorted((w.span.line, w.role) for w in r.deployment.workers if w.is_engine)
    assert engines == [(14, "prefill"), (19, "decode"), (24, "prefill"), (25, "decode")]
    assert [(p.prefill.span.line, p.decode.span.line) for p in r.pairs] == [(24, 25)]  # `just prefill` and `just decode` are not paired
    w = next(w for w in r.deployment.workers if w.span.line == 14)
    assert w.value("model") == "Qwen/Qwen2.5-7B-Instruct" and w.where("model").line == 4  # {{model}}: located at the assignment
    assert w.value("ucx_tls") == "rc,cuda_copy"  # `export NAME :=` is in the recipes' environment
    assert w.span.column == 29 and "vllm" == r.source_lines[13][28:32]
    [f] = [f for f in r.findings if f.code == "DG203"]
    assert (f.line, f.column) == (6, 17)  # small_block := "16", the other end big-block := "32"
    assert {f.line for f in r.findings if f.code == "DG405"} == {14, 19}
    assert codes(r, "error") == codes(r, "warning") == set()


def test_dependencies_run_with_the_recipe_and_a_parameter_is_unknown():
    r = lint("just/deps/pd.just")
    assert [(p.prefill.span.line, p.decode.span.line) for p in r.pairs] == [(4, 7)]  # `up` runs both
    d = next(w for w in r.deployment.workers if w.role == "decode")
    assert not d.settings["port"].known  # {{port}}: a recipe parameter, set on the command line
    p = next(w for w in r.deployment.workers if w.role == "prefill")
    assert p.value("tp") == "2" and p.where("tp").line == 1


def test_a_justfile_without_serving_recipes_is_no_config():
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "justfile").write_text('test:\n    pytest -q\n\nlint:\n    ruff check .\n')
        [r] = lint_paths([tmp], RULES, LintOptions())
        assert r.deployment is None and r.skipped and not r.error


def test_recipes_in_another_language_are_not_read_as_shell():
    serve = "    vllm serve m --kv-transfer-config '{\"kv_connector\":\"NixlConnector\",\"kv_role\":\"kv_producer\"}'\n"
    py = to_shell('set shell := ["python3", "-c"]\n\nprefill:\n' + serve)
    assert "vllm" not in py
    script = to_shell("prefill:\n    #!/usr/bin/env python3\n" + serve + "\ndecode:\n    #!/usr/bin/env -S bash -eu\n" + serve)
    assert script.count("vllm serve") == 1 and script.splitlines()[6].strip().startswith("vllm serve")
