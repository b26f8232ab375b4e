"""Many files in one call (issue 23): a worker process drops each file's document, text and deployment once the file
is checked, and the report is the same as one process's."""

import weakref
from pathlib import Path

import pytest

from disagg.doctor import parallel
from disagg.doctor.context import LintOptions
from disagg.doctor.engine import lint_paths
from disagg.doctor.files import read_path
from disagg.doctor.output import render
from disagg.doctor.registry import default_registry

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted(str(p) for p in [*(ROOT / "examples").glob("*.yaml"), *(ROOT / "tests" / "fixtures" / "stacks").glob("*.yaml")])


def test_a_worker_holds_one_file_at_a_time(monkeypatch):
    read: list[weakref.ref] = []

    def reading(path, explicit, options, fmt, stdin_bytes=None):
        held = [r() for r in read if r() is not None]
        assert not held, f"{held[0].path} still held while reading {path}"
        result = read_path(path, explicit, options, fmt, stdin_bytes)
        read.append(weakref.ref(result))
        return result

    monkeypatch.setattr(parallel, "read_path", reading)
    codes = [r.code for r in default_registry().select(["ALL"], [], [])]
    done = parallel._chunk(([(p, True) for p in FILES], codes, LintOptions(), "auto"))
    assert len(done) == len(FILES) == len(read)
    assert any(r.findings for r, _ in done)  # the files were checked, not only read


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "junit", "github"])
def test_several_processes_report_what_one_process_reports(fmt):
    registry = default_registry()
    rules = registry.select(["ALL"], [], [])
    one = lint_paths(FILES, rules, LintOptions())
    many = parallel.lint_in_processes([(p, True) for p in FILES], rules, LintOptions(), "auto")
    assert render(fmt, many, registry) == render(fmt, one, registry)
    assert any(r.findings for r in one)


def test_verbose_text_from_several_processes_names_each_pair_as_one_process_does():
    # it raised AttributeError (a pair's end sent back from a worker lacked why it has its role) on 64 files or more
    registry = default_registry()
    rules = registry.select(["ALL"], [], [])
    one = lint_paths(FILES, rules, LintOptions())
    many = parallel.lint_in_processes([(p, True) for p in FILES], rules, LintOptions(), "auto")
    text = render("text", many, registry, verbose=True)
    assert text == render("text", one, registry, verbose=True)
    assert "(prefill: " in text


def test_several_processes_keep_only_the_source_lines_a_finding_quotes():
    registry = default_registry()
    rules = registry.select(["ALL"], [], [])
    one = lint_paths(FILES, rules, LintOptions())
    many = parallel.lint_in_processes([(p, True) for p in FILES], rules, LintOptions(), "auto")
    kept = sum(len(line) for r in many for line in r.source_lines)
    assert 0 < kept < sum(len(line) for r in one for line in r.source_lines) / 2
    assert render("text", many, registry) == render("text", one, registry)  # each snippet still shown


@pytest.mark.parametrize("fmt", ["json", "sarif"])
def test_json_reports_are_the_text_json_dumps_gives(fmt):
    # written into one buffer piece by piece rather than joined from a list of every piece: the same bytes
    import json

    registry = default_registry()
    out = render(fmt, lint_paths(FILES, registry.select(["ALL"], [], []), LintOptions()), registry)
    assert out == json.dumps(json.loads(out), indent=2)
    assert '"findings": [\n' in out or '"results": [\n' in out
