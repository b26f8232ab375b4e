"""A flag whose name a script fills in at run time (`ARGS+=("--$key" "$value")` in a loop that reads a mounted
serving-args file, as GPU recipes' Dynamo templates do) can be any flag, the parallelism and the role among them: the
doctor must not read its absence from the file as the engine's default (held-out corpus 7: six false DG302/DG107)."""

from __future__ import annotations

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: {role}
spec:
  containers:
  - name: worker
    image: example/dynamo-sglang
    command: ["/bin/bash", "-c"]
    args:
    - |
      ARGS=(--model-path /models/m)
      while IFS=': ' read -r key value; do
        ARGS+=("--$key" "$value")
      done < /config/serving-args.yaml
      exec python3 -m dynamo.sglang --disaggregation-mode {role} "${{ARGS[@]}}"
    resources:
      limits:
        nvidia.com/gpu: 4
"""


def _pods(text: str) -> str:
    return text.format(role="prefill") + "---\n" + text.format(role="decode")


def _codes(cli, write, text: str) -> list[str]:
    path = write(_pods(text), "pods.yaml")
    run = cli("doctor", str(path), "--output-format", "json")
    return [f["code"] for f in run.json()["findings"] if f["severity"] in ("warning", "error")]


def test_flags_named_at_run_time_may_set_the_parallelism(cli, write):
    assert "DG302" not in _codes(cli, write, POD)


def test_flags_the_file_states_are_still_checked(cli, write):
    # the same pod with no run-time flag names: TP 1 on 4 GPUs leaves 3 idle
    assert "DG302" in _codes(cli, write, POD.replace('ARGS+=("--$key" "$value")', "true"))
