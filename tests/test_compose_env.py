"""A compose service's environment as the container gets it: anchors, merge keys (the service's own keys win), list and
map forms, through `bash -c` scripts, with the position of the value itself; and `env_file:`, which this file does
not show, leaves the variables the doctor reads unknown rather than unset."""

from __future__ import annotations

from disagg.doctor.context import LintOptions
from disagg.doctor.engine import lint_text
from disagg.doctor.registry import default_registry

RULES = [r for r in default_registry() if not r.live]

ANCHORED = """x-common: &common
  UCX_TLS: rc,cuda_copy
  VLLM_NIXL_SIDE_CHANNEL_PORT: "5600"
x-more: &more
  DYN_NAMESPACE: demo
services:
  prefill:
    image: vllm/vllm-openai:v0.11.0
    environment:
      <<: [*common, *more]
      VLLM_NIXL_SIDE_CHANNEL_PORT: "5601"
    entrypoint: ["bash", "-c"]
    command:
      - |
        exec vllm serve m --port 8100 --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_producer"}'
  decode:
    image: vllm/vllm-openai:v0.11.0
    environment: *common
    command: ["m", "--port", "8200", "--kv-transfer-config", '{"kv_connector":"NixlConnector","kv_role":"kv_consumer"}']
"""


def _workers(text: str):
    r = lint_text("compose.yaml", text, [], LintOptions())
    assert r.error is None, r.error
    return {w.name: w for w in r.deployment.workers}


def test_merge_keys_and_aliases_give_each_value_where_it_is_written():
    ws = _workers(ANCHORED)
    pre, dec = ws["prefill"], ws["decode"]
    assert (pre.env["UCX_TLS"].value, pre.env["UCX_TLS"].span.line, pre.env["UCX_TLS"].span.column) == ("rc,cuda_copy", 2, 12)
    assert (pre.env["VLLM_NIXL_SIDE_CHANNEL_PORT"].value, pre.env["VLLM_NIXL_SIDE_CHANNEL_PORT"].span.line) == ("5601", 11)
    assert (pre.settings["namespace"].value, pre.settings["namespace"].span.line) == ("demo", 5)
    assert (dec.env["VLLM_NIXL_SIDE_CHANNEL_PORT"].value, dec.env["VLLM_NIXL_SIDE_CHANNEL_PORT"].span.line) == ("5600", 3)


def test_list_form_points_at_the_value():
    ws = _workers("""services:
  decode:
    image: vllm/vllm-openai:v0.11.0
    environment:
      - UCX_TLS=tcp,cuda_copy
    command: ["m", "--port", "8200"]
""")
    s = ws["decode"].env["UCX_TLS"]
    assert (s.value, s.span.line, s.span.column, s.span.end_column) == ("tcp,cuda_copy", 5, 17, 30)


SAME_HOST = """services:
  prefill:
    image: vllm/vllm-openai:v0.11.0
    network_mode: host
    {prefill_env}
    command: ["m", "--port", "8100", "--kv-transfer-config", '{{"kv_connector":"NixlConnector","kv_role":"kv_producer"}}']
  decode:
    image: vllm/vllm-openai:v0.11.0
    network_mode: host
    {decode_env}
    command: ["m", "--port", "8200", "--kv-transfer-config", '{{"kv_connector":"NixlConnector","kv_role":"kv_consumer"}}']
"""


def _codes(text: str) -> list[str]:
    r = lint_text("compose.yaml", text, RULES, LintOptions())
    assert r.error is None, r.error
    return [f.code for f in r.findings if f.severity.label in ("error", "warning")]


def test_both_left_at_the_default_side_channel_port_on_one_host_is_reported():
    assert "DG207" in _codes(SAME_HOST.format(prefill_env="labels: {a: b}", decode_env="labels: {a: b}"))


def test_env_file_may_set_the_side_channel_port():
    text = SAME_HOST.format(prefill_env="env_file: prefill.env", decode_env="env_file: [{path: decode.env, required: false}]")
    assert "DG207" not in _codes(text)
    ws = _workers(text)
    assert not ws["prefill"].settings["side_channel_port"].known and "env_file prefill.env" in str(ws["prefill"].settings["side_channel_port"].value)
