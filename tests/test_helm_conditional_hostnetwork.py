"""`hostNetwork: true` written inside a Helm `{{ if }}` puts a pod on its node's network only when the chart's values
say so: two such pods pinned to one node do not certainly share ports (held-out corpus 7: a false DG304 on a chart
whose values leave the condition false). Written without the condition, the clash is certain and still reported."""

from __future__ import annotations

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: {role}
spec:
  nodeName: node-a
  {{{{- if .Values.hostNetwork }}}}
  hostNetwork: true
  {{{{- end }}}}
  containers:
  - name: server
    image: lmsysorg/sglang:v0.5.3
    command: ["python3", "-m", "sglang.launch_server", "--model-path", "m", "--port", "30000",
              "--disaggregation-mode", "{role}"]
"""


def _codes(cli, write, text: str) -> list[str]:
    path = write(text.format(role="prefill") + "---\n" + text.format(role="decode"), "templates/pods.yaml")
    run = cli("doctor", str(path), "--output-format", "json")
    return [f["code"] for f in run.json()["findings"] if f["severity"] in ("warning", "error")]


def test_host_network_under_a_template_condition_is_not_a_certain_clash(cli, write):
    assert "DG304" not in _codes(cli, write, POD)


def test_host_network_written_plainly_still_clashes(cli, write):
    plain = POD.replace("  {{{{- if .Values.hostNetwork }}}}\n", "").replace("  {{{{- end }}}}\n", "")
    assert "DG304" in _codes(cli, write, plain)
