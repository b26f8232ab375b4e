"""Files side by side in one folder are one deployment only where nothing says otherwise: a folder of alternative setups
(a NIXL prefill script next to a NIXL decode script and an LMCache one, all for one model) does not say which files run
together, so a verdict on a pair across such files is at most an info that says it is a guess."""

from __future__ import annotations

PREFILL = """vllm serve Qwen/Qwen3-8B --port 8100 \\
  --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_producer"}'
"""
DECODE_NIXL = """vllm serve Qwen/Qwen3-8B --port 8200 \\
  --kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_consumer"}'
"""
DECODE_LMCACHE = """vllm serve Qwen/Qwen3-8B --port 8200 \\
  --kv-transfer-config '{"kv_connector":"LMCacheConnectorV1","kv_role":"kv_consumer"}'
"""


def test_one_prefill_file_and_one_decode_file_are_one_deployment(cli, write):
    write(PREFILL, "pd/prefill.sh")
    write(DECODE_LMCACHE, "pd/decode.sh")
    r = cli("doctor", "pd", "--target-version", "vllm=0.11.2")
    assert r.code == 1 and "DG202 [error]" in r.out, r.out


def test_alternative_decode_files_make_every_link_across_them_a_guess(cli, write):
    write(PREFILL, "pd/prefill.sh")
    write(DECODE_NIXL, "pd/decode.sh")
    write(DECODE_LMCACHE, "pd/decode-lmcache.sh")
    r = cli("doctor", "pd", "--target-version", "vllm=0.11.2")
    assert "DG202 [error]" not in r.out and "DG202 [warning]" not in r.out, r.out
    assert "DG202 [info]" in r.out and "this pair is a guess" in r.out and "links as well with decode workers of 2 files" in r.out, r.out
    assert r.code == 0, r.out


DECODE_POD = """apiVersion: v1
kind: Pod
metadata: {name: decode}
spec:
  containers:
    - name: vllm
      image: vllm/vllm-openai:v0.11.2
      command: [vllm, serve, Qwen/Qwen3-8B]
      args: [--kv-transfer-config, '{"kv_connector":"LMCacheConnectorV1","kv_role":"kv_consumer"}']
"""


def test_a_script_and_a_manifest_side_by_side_are_a_guess_not_one_deployment(cli, write):
    write(PREFILL, "pd/prefill.sh")
    write(DECODE_POD, "pd/decode.yaml")
    r = cli("doctor", "pd", "--target-version", "vllm=0.11.2")
    assert "DG202 [error]" not in r.out and "DG202 [info]" in r.out, r.out
    assert "a kubernetes file and a shell script are rarely halves of one deployment" in r.out or \
        "a shell script and a kubernetes file are rarely halves of one deployment" in r.out, r.out
    assert r.code == 0, r.out
