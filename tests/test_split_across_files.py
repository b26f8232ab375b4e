"""Two files of one Dynamo deployment (tests/fixtures/dynamo-two-hosts: the frontend and prefill engine on one
host, the decode engine on another, one etcd): where the setting that pairs them breaks, the doctor says which one
(DG601) instead of "no pair formed" (DG405), but only where everything else the files state ties them together."""

from __future__ import annotations

from pathlib import Path

STACK = Path(__file__).resolve().parent / "fixtures" / "dynamo-two-hosts"


def _copy(write, host2_edit=None, host1_edit=None) -> None:
    for name, edit in (("host-1.yaml", host1_edit), ("host-2.yaml", host2_edit)):
        text = (STACK / name).read_text()
        if edit is not None:
            old, new = edit
            assert text.count(old) == 1
            text = text.replace(old, new)
        write(text, f"pd/{name}")


def _codes(r, severity=("error", "warning")):
    return [(f["code"], f["path"].rsplit("/", 1)[-1], f["line"]) for f in r.json()["findings"] if f["severity"] in severity]


def test_the_two_hosts_pair_and_pass(cli, write):
    _copy(write)
    r = cli("doctor", "pd", "--output-format", "json")
    assert r.code == 0 and _codes(r) == [], r.out


def test_decode_in_another_namespace_is_dg601_at_both_ends(cli, write):
    _copy(write, host2_edit=("  DYN_NAMESPACE: pd-demo", "  DYN_NAMESPACE: pd-demo-decode"))
    r = cli("doctor", "pd", "--output-format", "json")
    assert r.code == 1
    assert sorted(_codes(r)) == [("DG601", "host-1.yaml", 4), ("DG601", "host-2.yaml", 3)], r.out
    assert "DG405" not in {f["code"] for f in r.json()["findings"]}


def test_no_shared_discovery_written_is_no_split(cli, write):
    """Without the same etcd endpoint written on both sides, nothing ties the two files into one deployment."""
    _copy(write, host2_edit=("  DYN_NAMESPACE: pd-demo", "  DYN_NAMESPACE: pd-demo-decode"),
          host1_edit=("  ETCD_ENDPOINTS: http://${HOST_1}:2379", "  ETCD_ENDPOINTS: http://10.0.0.9:2379"))
    r = cli("doctor", "pd", "--output-format", "json")
    assert "DG601" not in {f["code"] for f in r.json()["findings"]}, r.out


def test_a_dynamo_0x_frontend_pairs_by_model_alone_so_no_split(cli, write):
    """Before 1.0.0 the frontend activated the prefill router by model name whatever the namespace."""
    old = "nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.2.0"
    _copy(write, host2_edit=("  DYN_NAMESPACE: pd-demo", "  DYN_NAMESPACE: pd-demo-decode"))
    for name in ("host-1.yaml", "host-2.yaml"):
        p = Path("pd") / name
        p.write_text(p.read_text().replace(old, "nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.6.1"))
    r = cli("doctor", "pd", "--output-format", "json")
    assert "DG601" not in {f["code"] for f in r.json()["findings"]}, r.out


def test_served_name_differs_on_a_pair_across_files(cli, write):
    _copy(write, host1_edit=("--served-model-name llama", "--served-model-name llama-prefill"))
    r = cli("doctor", "pd", "--output-format", "json")
    assert ("DG601", "host-1.yaml", 33) in _codes(r), r.out

