"""llm-d's routing sidecar in a KServe LLMInferenceServiceConfig's pod: it shares the pod's network with vLLM, so a
vLLM moved onto the sidecar's port is a clash (DG304) at the line and column of the port; a port that KServe fills
in when it renders the config (`{{ }}`) is unknown and compared with nothing; a config that holds only the prefill
side is half of a deployment and is paired with nothing."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "kserve"
DECODE = (FIXTURES / "decode-sidecar.yaml").read_text()
VLLM_PORT = "--port 8001\n"


def _doctor(cli, write, text: str, name: str = "config.yaml") -> dict:
    return cli("doctor", str(write(text, name)), "--output-format", "json").json()


def _loud(report: dict) -> list[dict]:
    return [f for f in report["findings"] if f["severity"] in ("warning", "error")]


def test_sidecar_and_vllm_on_their_own_ports_is_clean(cli, write):
    assert _loud(_doctor(cli, write, DECODE)) == []


def test_vllm_on_the_sidecars_port_clashes_at_the_port(cli, write):
    assert VLLM_PORT in DECODE
    text = DECODE.replace(VLLM_PORT, "--port 8000\n")
    [clash] = _loud(_doctor(cli, write, text))
    assert (clash["code"], clash["severity"]) == ("DG304", "error")
    lines = text.splitlines()
    at = (clash["line"], clash["column"])
    assert lines[at[0] - 1][at[1] - 1:].startswith("8000")  # the sidecar's --port=8000
    assert "--port=8000" in lines[at[0] - 1]
    [other] = clash["related"]
    assert "vllm serve" in lines[other["line"] - 1] and lines[other["line"] - 1][other["column"] - 1:].startswith("8000")


def test_a_port_filled_in_at_render_time_is_not_compared(cli, write):
    text = DECODE.replace(VLLM_PORT, "--port {{ .Spec.Port }}\n")
    assert [f for f in _doctor(cli, write, text)["findings"] if f["code"] == "DG304"] == []


def test_the_sidecars_default_port_is_its_own(cli, write):
    # without --port the sidecar listens on 8000 (llm-d/llm-d-router cmd/pd-sidecar/main.go at v0.4.0): a warning,
    # since the file does not write the port it clashes on
    text = DECODE.replace("          - --port=8000\n", "").replace(VLLM_PORT, "--port 8000\n")
    [clash] = _loud(_doctor(cli, write, text))
    assert (clash["code"], clash["severity"]) == ("DG304", "warning")


def test_an_init_container_that_exits_first_binds_nothing_beside_vllm(cli, write):
    # without restartPolicy: Always an init container runs to completion before the containers start
    text = DECODE.replace("        restartPolicy: Always\n", "").replace(VLLM_PORT, "--port 8000\n")
    assert _loud(_doctor(cli, write, text)) == []


def test_a_prefill_only_config_is_paired_with_nothing(cli, write):
    report = _doctor(cli, write, (FIXTURES / "prefill-only.yaml").read_text())
    assert _loud(report) == []
    assert report["files"][0]["pairs"] == []
    assert report["summary"]["pairs_checked"] == 0


SERVICE = """\
apiVersion: serving.kserve.io/v1alpha2
kind: LLMInferenceService
metadata:
  name: svc
spec:
  model:
    uri: hf://org/model
  template:
    initContainers:
      - name: llm-d-routing-sidecar
        restartPolicy: Always
        command: [/app/pd-sidecar, --port=8000, --vllm-port=8001, --kv-connector=nixlv2]
    containers:
      - name: main
        image: example.org/vllm:test
  prefill:
    template:
      containers:
        - name: main
          image: example.org/vllm:test
"""


def test_a_service_whose_vllm_command_comes_from_the_well_known_config_has_no_default_port(cli, write):
    # KServe merges the well-known config's main container, with its --port, into a main container that writes no
    # command: vllm serve's own default (8000) is not what runs, so the sidecar's 8000 is no clash
    assert [f for f in _doctor(cli, write, SERVICE)["findings"] if f["code"] == "DG304"] == []


def test_a_prefill_only_config_is_not_paired_with_a_decode_config_given_beside_it(cli, write):
    # which decode config KServe merges beside it is the service's choice (its own worker/parallelism), and no
    # service is in the run: the two stay unpaired, with no warning
    decode = write(DECODE, "decode.yaml")
    prefill = write((FIXTURES / "prefill-only.yaml").read_text(), "prefill.yaml")
    report = cli("doctor", str(decode), str(prefill), "--output-format", "json").json()
    assert _loud(report) == []
    assert report["summary"]["pairs_checked"] == 0
