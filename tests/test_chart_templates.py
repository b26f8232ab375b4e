"""Chart templates read for what is literal (readers/helm.py, readers/gotemplate.py), on a KServe LLMInferenceService
template written for these tests: an action whose strings hold `}}` ends where Go's lexer ends it, a one-line
`{{ if }}A{{ else }}B{{ end }}` reads as the first branch (unknown: it holds only when the condition does), the branches
of a multi-line if/else may write the same keys, and an EPP config given inline with `--config-text` is read as the
scheduler's config."""

from __future__ import annotations

from pathlib import Path

import pytest

from disagg.schemas.readers.gotemplate import ACTION, first_alternative

TEMPLATE = (Path(__file__).parent / "fixtures" / "templates" / "llmisvc-pd.yaml").read_text()


@pytest.mark.parametrize("text, actions", [
    ('x: "{{ "{{" }} ChildName .Name `-pool` {{ "}}" }}"', ['{{ "{{" }}', '{{ "}}" }}']),
    ("{{/* a comment with a \" in it */}}", ["{{/* a comment with a \" in it */}}"]),
    ("{{ `raw }} string` }} {{ .Values.x }}", ["{{ `raw }} string` }}", "{{ .Values.x }}"]),
])
def test_an_action_ends_at_the_first_closing_braces_outside_its_strings(text, actions):
    assert [m.group(0) for m in ACTION.finditer(text)] == actions


def test_a_one_line_if_else_keeps_its_first_branch_in_place():
    line = 'v: {{ if .A }}"a"{{ else }}"bb"{{ end }}'
    out = first_alternative(line)
    assert len(out) == len(line) and out.startswith('v: {{ if .A }}"a"') and '"bb"' not in out


def test_the_template_is_read_and_its_prefill_pool_paired(cli, write):
    report = cli("doctor", str(write(TEMPLATE, "templates/llmisvc.yaml")), "--output-format", "json").json()
    assert report["errors"] == [] and report["summary"]["pairs_checked"] == 1
    assert [f for f in report["findings"] if f["severity"] in ("warning", "error")] == []


def test_the_inline_epp_config_is_checked(cli, write):
    broken = TEMPLATE.replace("                  - pluginRef: prefill-filter", "                  - pluginRef: decode-filter")
    report = cli("doctor", str(write(broken, "templates/llmisvc.yaml")), "--output-format", "json").json()
    found = [(f["code"], f["line"]) for f in report["findings"] if f["severity"] == "warning"]
    assert found == [("DG621", 28)]


_POD = """apiVersion: apps/v1
kind: Deployment
metadata: {name: sglang-pd}
spec:
  template:
    spec:
      containers:
{{- if .Values.pd }}
        - name: prefill
          image: lmsysorg/sglang:v0.5.5
          command: [python3, -m, sglang.launch_server, --model-path, m, --port, "30000", --disaggregation-mode, prefill]
{{- ELSE }}
        - name: decode
          image: lmsysorg/sglang:v0.5.5
          command: [python3, -m, sglang.launch_server, --model-path, m, --port, "30001", --disaggregation-mode, decode]
{{- end }}
"""


@pytest.mark.parametrize("with_else, known", [(False, True), (True, False)])
def test_a_condition_around_a_whole_container_decides_only_whether_it_runs_unless_it_has_an_else(with_else, known):
    from disagg.doctor.context import LintOptions
    from disagg.doctor.files import read_file

    text = _POD.replace("{{- ELSE }}", "{{- else }}" if with_else else "{{- end }}\n{{- if .Values.pd }}")
    dep = read_file("templates/pd.yaml", text, LintOptions()).deployment
    modes = [w.settings["disaggregation_mode"].known for w in dep.workers]
    assert modes == [known, known]
