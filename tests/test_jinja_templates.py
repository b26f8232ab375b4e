"""Jinja templates of configs (`*.yaml.j2`, `*.sh.j2`: schemas/readers/jinja.py), on templates written for these
tests: read at their own lines, with what the template fills in unknown and what sits in `{% if %}` / `{% for %}`
holding only when the condition does."""

from __future__ import annotations

from pathlib import Path

import pytest

from disagg.doctor.files import takes
from disagg.schemas.readers.jinja import as_go

FIXTURES = Path(__file__).parent / "fixtures" / "templates"


def test_statements_become_go_actions_of_the_same_length():
    text = "{%- set x = 1 -%}\n{% if a %}b: 1\n{% elif c %}b: 2\n{% else %}b: 3{% endif %}\n{% for i in xs %}- {{ i }}{% endfor %}\n{# a\ncomment #}\n"
    out = as_go(text)
    assert [len(x) for x in out.split("\n")] == [len(x) for x in text.split("\n")]
    assert out.split("\n")[1].startswith("{{ if a }}") and "{{ else c }}" in out and "{{ end   }}" in out
    assert "{{ if  i in xs }}" in out and "set x" not in out and "comment" not in out


@pytest.mark.parametrize("name, taken", [
    ("deploy.yaml.j2", True), ("run.sh.j2", True), ("values.yml.jinja", True), ("start.bash.jinja2", True),
    ("config.json.j2", False), ("notes.txt.j2", False), (".hidden.yaml.j2", False),
])
def test_the_folder_walk_takes_templates_of_configs_it_reads(name, taken):
    assert takes(name) is taken


def _report(cli, path: Path):
    return cli("doctor", str(path), "--output-format", "json").json()


def test_a_script_template_is_read_at_its_own_lines(cli):
    report = _report(cli, FIXTURES / "run-pd.sh.j2")
    assert report["errors"] == [] and report["summary"]["pairs_checked"] == 1
    assert [f for f in report["findings"] if f["severity"] in ("warning", "error")] == []


def test_what_the_template_may_add_keeps_a_contradiction_a_note(cli, write):
    # the router sends decode traffic to a server in mode null, but `{{ decode_extra_args }}` may carry the flag
    text = (FIXTURES / "run-pd.sh.j2").read_text().replace("--port 30001 --disaggregation-mode decode", "--port 30001 --disaggregation-mode null")
    report = _report(cli, write(text, "run.sh.j2"))
    dg107 = [f for f in report["findings"] if f["code"] == "DG107"]
    assert dg107 and all(f["severity"] == "info" for f in dg107) and dg107[0]["line"] == 8
    # written outright, the same contradiction is an error
    plain = text.replace(" {{ decode_extra_args }}", "")
    assert any(f["code"] == "DG107" and f["severity"] == "error" for f in _report(cli, write(plain, "run2.sh.j2"))["findings"])


def test_a_manifest_template_pairs_its_deployments(cli):
    report = _report(cli, FIXTURES / "pd-deployments.yaml.j2")
    assert report["errors"] == [] and report["summary"]["pairs_checked"] == 1
    assert [f for f in report["findings"] if f["severity"] in ("warning", "error")] == []


def test_if_else_statements_on_their_own_lines_are_alternatives(cli, write):
    """`{% if mode == 'agg' %}` one server `{% else %}` a P/D pair `{% endif %}`: one render starts one branch, so the
    aggregated server is no neighbour of the pair (both on :8000 is no clash) and is paired with neither."""
    text = (
        "#!/bin/bash\n"
        "{% if mode == 'agg' %}\n"
        "python3 -m sglang.launch_server --model-path m --port 30000 &\n"
        "{% else %}\n"
        "python3 -m sglang.launch_server --model-path m --port 30000 --disaggregation-mode prefill &\n"
        "python3 -m sglang.launch_server --model-path m --port 30001 --disaggregation-mode decode &\n"
        "{% endif %}\n"
        "wait\n"
    )
    report = _report(cli, write(text, "run.sh.j2"))
    assert report["summary"]["pairs_checked"] == 1
    assert not [f for f in report["findings"] if f["code"] == "DG304"]


def test_a_statement_inside_a_continued_command_keeps_the_command_going(cli, write):
    """An optional flag written as `{% if x %}` / `--flag \\` / `{% endif %}` between `\\`-continued lines: the command
    goes on past the statement, so the flags after it (here the ports) are read, and the optional one is unknown."""
    server = ("CUDA_VISIBLE_DEVICES={gpu} python3 -m sglang.launch_server \\\n  --model-path m \\\n{{% if use_mooncake %}}\n"
              "  --disaggregation-transfer-backend mooncake \\\n{{% endif %}}\n  --disaggregation-mode {mode} \\\n  --port {port} &\n")
    text = ("#!/bin/bash\n" + server.format(gpu=0, mode="prefill", port=30001) + server.format(gpu=1, mode="decode", port=30002)
            + "python3 -m sglang_router.launch_router --pd-disaggregation --prefill http://127.0.0.1:30001 --decode http://127.0.0.1:30002 &\n")
    report = _report(cli, write(text, "run.sh.j2"))
    assert report["summary"]["pairs_checked"] == 1
    assert [f for f in report["findings"] if f["severity"] in ("warning", "error")] == []
