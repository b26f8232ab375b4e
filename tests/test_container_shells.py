"""A serving command given as the script of a shell that a container runs: Kubernetes `command` + `args` (one argv,
the shell's `-c` in one and the script in the other), and `docker run|exec ... sh -c SCRIPT` in launch scripts
(fixtures written for these tests)."""

from __future__ import annotations

import pytest

from disagg.schemas import knowledge
from disagg.schemas.cmdline import shell_script_at
from disagg.schemas.readers import read_script
from disagg.schemas.shell import ShellReader

SERVE = "python3 -m sglang.launch_server --model-path m --disaggregation-mode prefill --port 30000"


@pytest.mark.parametrize(
    "words, at",
    [
        (["sh", "-c", "S"], 2),
        (["/bin/bash", "-c", "--", "S"], 3),
        (["bash", "-lc", "S", "name"], 2),
        (["bash", "-e", "-o", "pipefail", "-c", "S"], 5),
        (["bash", "--login", "-c", "S"], 3),
        (["sh", "-ec", "-", "S"], 3),
        (["bash", "+o", "history", "-c", "S"], 4),
        (["bash", "-c"], None),  # nothing to run
        (["bash", "/start.sh"], None),  # a script file, not -c
        (["bash", "-e", "/start.sh"], None),
        (["python3", "-c", "S"], None),
        (["bash", "-o", "c", "S"], None),  # `c` is the value of -o here, not the -c option
    ],
)
def test_where_a_shell_reads_its_script(words, at):
    assert shell_script_at(words) == at


def _pod(command: list[str], args: list[str] | None) -> str:
    import json

    lines = ["apiVersion: v1", "kind: Pod", "metadata: {name: pre}", "spec:", "  containers:", "    - name: engine",
             "      image: lmsysorg/sglang:v0.5.8", f"      command: {json.dumps(command)}"]
    if args is not None:
        lines.append(f"      args: {json.dumps(args)}")
    return "\n".join(lines) + "\n"


def _workers(text: str):
    from disagg.doctor.context import LintOptions
    from disagg.doctor.engine import lint_text

    r = lint_text("pod.yaml", text, [], LintOptions())
    assert r.error is None, r.error
    return r.deployment.engines() if r.deployment is not None else []


@pytest.mark.parametrize(
    "command, args",
    [
        (["/bin/bash", "-c", "--"], [SERVE]),
        (["/bin/sh", "-c"], [SERVE]),
        (["sh"], ["-ec", SERVE]),
        (["bash", "-e", "-o", "pipefail", "-c"], [SERVE]),
        (["bash", "-lc", SERVE], None),
    ],
)
def test_a_pod_whose_shell_and_script_are_split_over_command_and_args_is_read(command, args):
    text = _pod(command, args)
    [w] = _workers(text)
    assert (w.program, w.role, w.known("port")) == ("sglang", "prefill", "30000")
    span = w.settings["port"].span  # points into the script where it is written, in command or args
    line = text.splitlines()[span.line - 1]
    assert line[span.column - 1 : span.column - 1 + 5] == "30000"


def test_a_shell_that_runs_a_script_file_or_nothing_is_no_engine():
    assert _workers(_pod(["/bin/sh", "-c"], None)) == []
    assert _workers(_pod(["bash", "/opt/start.sh"], ["--disaggregation-mode", "prefill"])) == []


def _launches(text: str):
    return ShellReader(text).read(text)


@pytest.mark.parametrize(
    "line",
    [
        f'docker exec -d box /bin/bash -c "{SERVE}"',
        f"docker exec -it -e A=1 -w /work -u root box bash -lc '{SERVE}'",
        f"podman exec box sh -c -- '{SERVE}'",
        f"docker container exec -d box sh -c '{SERVE}'",
        f"docker exec box {SERVE}",
        f"docker run --rm --network host --name p img:1 sh -c '{SERVE}'",
        f'docker run -d --entrypoint /bin/bash img:1 -c "{SERVE}"',
    ],
)
def test_a_container_shell_script_in_a_launch_script_is_read(line):
    [x] = _launches(line + "\n")
    c = x.command
    assert (c.program, c.flags["disaggregation-mode"].text, c.flags["port"].text) == ("sglang", "prefill", "30000")
    span = c.flags["port"].span
    assert line[span.column - 1 : span.column - 1 + 5] == "30000"


def test_a_container_sees_its_own_environment_not_the_scripts():
    cmd = "python3 -m sglang.launch_server --disaggregation-mode $MODE"
    # single quotes: $MODE is expanded by the shell in the container, which has only docker's -e variables
    [x] = _launches(f"export MODE=prefill\ndocker exec box bash -c '{cmd}'\n")
    assert x.command.flags["disaggregation-mode"].text == "${MODE}"
    [x] = _launches(f"export MODE=prefill\ndocker exec -e MODE=decode box bash -c '{cmd}'\n")
    assert x.command.flags["disaggregation-mode"].text == "decode"
    # double quotes: this script expands it before docker runs anything
    [x] = _launches(f'MODE=decode\ndocker exec box bash -c "{cmd}"\n')
    assert x.command.flags["disaggregation-mode"].text == "decode"


def test_docker_exec_runs_on_the_network_of_its_container():
    text = ("docker run -d --name hostbox --network host img:1 sleep infinity\n"
            "docker run -d --name bridged img:1 sleep infinity\n"
            "docker exec -d hostbox bash -c 'vllm serve m --port 8100'\n"
            "docker exec -d bridged bash -c 'vllm serve m --port 8200'\n"
            "docker exec -d elsewhere bash -c 'vllm serve m --port 8300'\n"
            "vllm serve m --port 8400 &\n")
    dep = read_script("run.sh", text, knowledge.new_target())
    hosts = [(w.known("port"), w.host.kind, w.host.name) for w in dep.workers]
    assert hosts == [("8100", "process", "script"), ("8200", "container", "bridged"), ("8300", "unknown", "elsewhere"), ("8400", "process", "script")]
    nets = {w.known("port"): w.host.network for w in dep.workers}
    assert nets["8100"] == nets["8400"] and len({nets["8200"], nets["8300"], nets["8400"]}) == 3


def test_the_vllm_image_keeps_its_entrypoint_in_front_of_a_shell():
    # vllm/vllm-openai's ENTRYPOINT is `vllm serve`: `docker run IMAGE bash -c S` runs `vllm serve bash -c S`, no shell
    [x] = _launches(f"docker run vllm/vllm-openai:v0.11.0 bash -c '{SERVE}'\n")
    assert x.command.program == "vllm" and "disaggregation-mode" not in x.command.flags


def test_the_words_after_a_containers_sh_c_script_are_its_positional_parameters(cli, write):
    """`command: [bash, -c]` with `args: [SCRIPT, NAME, ARG...]`: bash sets $0 to NAME and $1... to the ARGs, so a
    script ending `exec vllm serve "$@"` runs vLLM with them (here its tensor parallel size, which DG302 compares with
    the 8 GPUs the container is given)."""
    manifest = """apiVersion: apps/v1
kind: Deployment
metadata: {name: glm}
spec:
  template:
    spec:
      containers:
      - name: vllm
        image: vllm/vllm-openai:v0.11.0
        command: ["bash", "-c"]
        args:
        - |
          sleep 5
          exec vllm serve "$@"
        - vllm
        - org/model
        - --tensor-parallel-size=8
        resources: {limits: {nvidia.com/gpu: "8"}}
"""
    report = cli("doctor", str(write(manifest, "glm.yaml")), "--output-format", "json").json()
    assert not [f for f in report["findings"] if f["code"] == "DG302"]
    half = cli("doctor", str(write(manifest.replace("=8", "=4"), "glm4.yaml")), "--output-format", "json").json()
    assert [f["code"] for f in half["findings"] if "4 sit reserved and idle" in f["message"]] == ["DG302"]
