"""A Dynamo v0 service config written as a block string (chart values, a ConfigMap's `data`, a ConfigMap in a Helm
template) is read as the `dynamo serve -f` file it becomes: the v0 rules fire on it as on a file of its own, at the
line and column of the outer file. A string that is no v0 config stays unread."""

from __future__ import annotations

# chart values whose `serving` string is a v0 config: the decode worker forgets remote-prefill (DG101 on VllmWorker)
VALUES = """\
image:
  tag: "0.3.0"
serving: |
  Common:
    model: /models/small
    kv-transfer-config: '{"kv_connector":"DynamoNixlConnector"}'
  VllmWorker:
    max-model-len: 2048
    common-configs: [model, kv-transfer-config]
  PrefillWorker:
    common-configs: [model, kv-transfer-config]
launcher: |
  #!/bin/sh
  exec dynamo serve graphs.disagg:Frontend -f /cfg/config.yaml
"""

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: serving-config
data:
  config.yaml: |
    Common:
      model: /models/small
      kv-transfer-config: '{"kv_connector":"DynamoNixlConnector"}'
    VllmWorker:
      remote-prefill: true
      conditional-disagg: true
      max-model-len: 2048
      max-local-prefill-length: 4096
      common-configs: [model, kv-transfer-config]
    PrefillWorker:
      common-configs: [model, kv-transfer-config]
"""

# a template whose ConfigMap fills the parallelism and GPUs in from the values: both Unknown, so no DG302 (GPUs idle
# or short) and no DG402 (a value of the wrong type) may come from the placeholder's text
TEMPLATE = """\
{{- if .Values.enabled }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
data:
  config.yaml: |
    Common:
      kv-transfer-config: {kv_connector: DynamoNixlConnector}
      model: /models/small
    VllmWorker:
      remote-prefill: true
      tensor-parallel-size: {{ .Values.tp }}
      ServiceArgs:
        resources:
          gpu: '{{ .Values.gpus }}'
      common-configs: [model, kv-transfer-config]
    PrefillWorker:
      tensor-parallel-size: 2
      ServiceArgs:
        resources:
          gpu: 2
      common-configs: [model, kv-transfer-config]
{{- end }}
"""

NOT_V0 = """\
replicas: 2
notes: |
  first: one
  second: two
script: |
  echo VllmWorker
"""


def _found(cli, path):
    run = cli("doctor", str(path), "--output-format", "json")
    return [(f["code"], f["line"], f["column"]) for f in run.json()["findings"] if f["severity"] in ("warning", "error")]


def test_values_block_string_is_read_as_a_v0_config_at_outer_positions(cli, write):
    assert ("DG101", 7, 3) in _found(cli, write(VALUES, "values.yaml"))


def test_configmap_data_is_read_as_a_v0_config(cli, write):
    # a local-prefill threshold above max-model-len: no prefill ever goes remote (DG102), at the threshold's value
    assert ("DG102", 14, 33) in _found(cli, write(CONFIGMAP, "cm.yaml"))


def test_template_values_inside_the_string_are_unknown(cli, write):
    path = write(TEMPLATE, "templates/config.yaml")
    codes = {c for c, _, _ in _found(cli, path)}
    assert not codes & {"DG302", "DG402", "DG204"}
    # the same config with the decode worker's parallelism written: 2 of its 8 GPUs used is reported (the test can fail)
    written = TEMPLATE.replace("{{ .Values.tp }}", "2").replace("'{{ .Values.gpus }}'", "8")
    assert ("DG302", 16, 16) in _found(cli, write(written, "templates/written.yaml"))


def test_a_string_that_is_no_v0_config_stays_unread(cli, write):
    path = write(NOT_V0, "other.yaml")
    run = cli("doctor", str(path))
    assert run.code == 2 and "not a recognised config" in run.out + run.err


def test_two_configs_in_one_values_file_are_not_paired(cli, write):
    """A decode config and a prefill config in two strings may run together or be alternatives (the chart decides):
    neither is paired with the other, and the decode one's missing prefill worker is not called a hang (DG104)."""
    text = """\
decode: |
  VllmWorker:
    model: /models/small
    remote-prefill: true
    kv-transfer-config: '{"kv_connector":"DynamoNixlConnector"}'
prefill: |
  PrefillWorker:
    model: /models/small
    kv-transfer-config: '{"kv_connector":"SomeOtherConnector"}'
"""
    codes = {c for c, _, _ in _found(cli, write(text, "values.yaml"))}
    assert "DG104" not in codes and "DG201" not in codes
    alone = text.split("prefill: |")[0]
    assert "DG104" in {c for c, _, _ in _found(cli, write(alone, "alone.yaml"))}


def test_configmaps_of_one_manifest_are_one_deployment(cli, write):
    """Two ConfigMaps of one file, a config each, are created together: their decode and prefill workers pair, and a
    connector that differs between them is reported (DG201)."""
    one = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
data:
  config.yaml: |
{body}"""
    dec = "    VllmWorker:\n      model: /models/small\n      remote-prefill: true\n      kv-transfer-config: '{\"kv_connector\":\"DynamoNixlConnector\"}'\n"
    pre = "    PrefillWorker:\n      model: /models/small\n      kv-transfer-config: '{\"kv_connector\":\"PyNcclConnector\"}'\n"
    path = write(one.format(name="d", body=dec) + "---\n" + one.format(name="p", body=pre), "cms.yaml")
    codes = {c for c, _, _ in _found(cli, path)}
    assert "DG104" not in codes
    assert codes & {"DG201", "DG202", "DG212"}
