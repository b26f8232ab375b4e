"""Many files in one call (issue 23): a worker process drops each file's document, text and deployment once the file
is checked, and the report is the same as one process's."""

import json
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


def _folder(tmp_path):
    """69 files: the examples and stacks 8 times over, a pair across two files whose KV dtypes differ (named to come
    first, so that the report keeps their place while they wait for each other), another in a subfolder (checked as
    a group of its own), an OME service and its runtime in two other folders (a reference across folders), and a
    serving config that does not parse."""
    import formats

    (tmp_path / "sub").mkdir(parents=True)
    for i in range(8):
        for p in FILES:
            (tmp_path / f"{i}-{Path(p).name}").write_text(Path(p).read_text())
    for name, text in formats.two_files(dict(formats.BASE), dict(formats.BASE, dtype="float16")).items():
        (tmp_path / f"0-{name}").write_text(text)
    for name, text in formats.two_files(dict(formats.BASE), dict(formats.BASE, connector=False)).items():
        (tmp_path / "sub" / name).write_text(text)
    for name in ("runtime", "service"):
        (tmp_path / f"ome-{name}").mkdir()
        (tmp_path / f"ome-{name}" / f"{name}.yaml").write_text((ROOT / "tests" / "fixtures" / "readers" / "ome" / f"{name}.yaml").read_text())
    (tmp_path / "1-broken.yaml").write_text("VllmWorker: {remote-prefill: [\n")
    return tmp_path


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "junit", "github"])
def test_a_report_printed_file_by_file_is_the_report_of_one_process(cli, tmp_path, monkeypatch, fmt):
    from disagg.doctor import engine

    folder = _folder(tmp_path / "configs")
    streamed = cli("doctor", "--output-format", fmt, "-v", folder)
    monkeypatch.setattr(engine, "PARALLEL_MIN_FILES", 10**9)  # every file read and checked in this process, then reported
    whole = cli("doctor", "--output-format", fmt, "-v", folder)
    assert (streamed.code, streamed.out) == (whole.code, whole.out) == (2, whole.out)  # the unparsable config: exit 2
    assert "0-decode.yaml" in whole.out and "sub/decode.yaml" in whole.out and "1-broken.yaml" in whole.out
    if fmt in ("json", "sarif"):
        doc = streamed.json()
        found = doc["findings"] if fmt == "json" else doc["runs"][0]["results"]
        assert any("0-decode.yaml" in json.dumps(f) and "0-prefill.yaml" in json.dumps(f) for f in found)  # the pair across files


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "junit", "github"])
def test_a_report_keeps_counts_not_the_files_it_has_written(monkeypatch, fmt):
    # Memory of the report that grows with the number of files: a report of 4N files must hold no more than the one of
    # N files plus a few bytes a file (the pairs' hashes), never a file's findings (a few KB each). Counted by
    # tracemalloc, which counts allocations, not a machine's timing or RSS: it cannot flake.
    import copy
    import gc
    import io
    import tracemalloc

    from disagg.doctor.output import open_report, stream

    monkeypatch.setattr(stream, "_SPOOL_MEMORY", 0)  # the sections that wait go to their temporary file at once
    registry = default_registry()
    # what the main process gets from a worker: results without their deployments (parallel._light)
    checked = [parallel._light(r)[0] for r in lint_paths(FILES, registry.select(["ALL"], [], []), LintOptions())]
    assert sum(len(r.findings) for r in checked) >= 8 and any(r.pairs for r in checked)

    def held(n: int) -> int:
        def results():
            for i in range(n):
                r = copy.deepcopy(checked[i % len(checked)])
                r.path = f"{i}-{r.path}"
                yield r

        report = open_report(fmt, io.StringIO(), registry)
        out = report.out = _Discard()
        tracemalloc.start()
        report.feed(("file", r) for r in results())
        gc.collect()
        size = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        assert out.size > n * 100
        return size

    n = 100
    held(n)  # what is made once (a format's rule texts, caches) is made here
    small, large = held(n), held(4 * n)
    assert large - small < 3 * n * 200


class _Discard:
    """An output that keeps nothing but its length."""

    def __init__(self):
        self.size = 0

    def write(self, text: str) -> None:
        self.size += len(text)
