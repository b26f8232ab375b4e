"""Launches wrapped in another program (launchers, child shells, containers, ssh) are read through the wrapper when
the wrapper is known to run the rest as a command, and are not read otherwise (fixtures written for these tests)."""

from __future__ import annotations

import pytest

from disagg.schemas.cmdline import UNKNOWN_WRAPPER
from disagg.schemas.shell import Launch, ShellReader


def launches(text: str) -> list[Launch]:
    return ShellReader(text).read(text)


def read(text: str) -> tuple[str, str | None, str | None]:
    [x] = launches(text)
    mode = x.command.flags.get("disaggregation-mode")
    port = x.command.flags.get("port")
    return x.command.program, mode.text if mode else None, port.text if port else None


@pytest.mark.parametrize(
    "line",
    [
        "mpirun -np 1 --mca btl tcp,self -x CUDA_VISIBLE_DEVICES python3 -m sglang.launch_server --disaggregation-mode prefill --port 30000",
        "srun -N 1 --ntasks-per-node 1 --gres=gpu:8 python3 -m sglang.launch_server --disaggregation-mode prefill --port 30000",
        "numactl -N 0 -m 0 python3 -m sglang.launch_server --disaggregation-mode prefill --port 30000",
        "numactl --cpunodebind=0 --membind=0 python3 -m sglang.launch_server --disaggregation-mode prefill --port 30000",
        "taskset -c 0-15 python3 -m sglang.launch_server --disaggregation-mode prefill --port 30000",
        "taskset 0xff python3 -m sglang.launch_server --disaggregation-mode prefill --port 30000",
        "timeout 3600 python3 -m sglang.launch_server --disaggregation-mode prefill --port 30000",
        "nohup env A=B python3 -m sglang.launch_server --disaggregation-mode prefill --port 30000 > p.log 2>&1 &",
        "apptainer exec --nv -B /data:/data \"$IMAGE\" python3 -m sglang.launch_server --disaggregation-mode prefill --port 30000",
        "singularity exec --nv img.sif python3 -m sglang.launch_server --disaggregation-mode prefill --port 30000",
        "bash -c \"python3 -m sglang.launch_server --disaggregation-mode prefill --port 30000\"",
        "nohup sh -c 'python3 -m sglang.launch_server --disaggregation-mode prefill --port 30000' > p.log 2>&1 &",
        "srun -N 1 bash -lc 'python3 -m sglang.launch_server --disaggregation-mode prefill --port 30000'",
        "ssh -p 22 -o StrictHostKeyChecking=no node1 python3 -m sglang.launch_server --disaggregation-mode prefill --port 30000",
        "$PYTHON -m sglang.launch_server --disaggregation-mode prefill --port 30000",
        # `uv run [OPTIONS] COMMAND` runs COMMAND in the project's environment (https://docs.astral.sh/uv/reference/cli/#uv-run)
        "uv run python3 -m sglang.launch_server --disaggregation-mode prefill --port 30000",
        "uv run --with sglang --python 3.12 python3 -m sglang.launch_server --disaggregation-mode prefill --port 30000",
        "\"${PYTHON:-python3}\" -m sglang.launch_server --disaggregation-mode prefill --port 30000",
        "ssh node1 \"cd /work && python3 -m sglang.launch_server --disaggregation-mode prefill --port 30000\"",
    ],
)
def test_the_engine_is_read_through_its_wrapper(line):
    assert read(line + "\n") == ("sglang", "prefill", "30000")


def test_a_child_shell_sees_only_exported_variables_and_ssh_none():
    # `bash -c '...$PORT'` expands $PORT in the child: a variable that is not exported is not this script's value
    # there (the child's environment decides it: unknown, kept as the reference)
    assert read("PORT=1\nexport MODE=prefill\nbash -c 'python3 -m sglang.launch_server --disaggregation-mode $MODE --port $PORT'\n")[1:] == ("prefill", "${PORT}")
    # over ssh the remote shell has none of this script's variables; double quotes expand them here first
    assert read("export MODE=prefill\nssh n1 'python3 -m sglang.launch_server --disaggregation-mode $MODE'\n")[1] == "${MODE}"
    assert read("MODE=decode\nssh n1 \"python3 -m sglang.launch_server --disaggregation-mode $MODE\"\n")[1] == "decode"


def test_what_a_child_shell_sets_does_not_come_back():
    text = "bash -c 'PORT=9; true'\npython3 -m sglang.launch_server --port \"${PORT:-30000}\"\n"
    assert read(text)[2] == "30000"


def test_findings_point_into_the_quoted_command():
    text = "#!/bin/bash\nbash -c \"python3 -m sglang.launch_server --port 30000\"\n"
    [x] = launches(text)
    span = x.command.flags["port"].span
    assert (span.line, text.splitlines()[1][span.column - 1 : span.column - 1 + 5]) == (2, "30000")


@pytest.mark.parametrize(
    "line, said",
    [
        ("mpirun --unknown-option value python3 -m sglang.launch_server --port 30000", True),  # is `value` the program? unknown
        ("apptainer run img.sif python3 -m sglang.launch_server --port 30000", True),  # the runscript decides what runs
        ("/opt/env/with-libs.sh python3 -m sglang.launch_server --port 30000", True),  # a wrapper whose code is elsewhere
        ("echo bash -c 'python3 -m sglang.launch_server --port 30000'", False),
        ("ssh node1", False),
        ("$RUNNER -m sglang.launch_sever --port 30000", False),  # not a serving module
        ("import sglang_router", False),  # a line of a Python here-document, which the lexer reads as a command: no wrapper
    ],
)
def test_an_unknown_wrapper_form_is_not_read(line, said):
    # never read as the engine; where a serving command is among the arguments, the reader says it could not follow it
    found = launches(line + "\n")
    assert all(x.command.program == UNKNOWN_WRAPPER and not x.command.flags for x in found)
    assert [("not in this file" in (x.note or "")) for x in found] == ([True] if said else [])


def test_what_ssh_starts_runs_on_that_host():
    from disagg.schemas import knowledge
    from disagg.schemas.readers import read_script

    text = ("ssh node1 vllm serve m --port 8000 &\nssh user@node2 vllm serve m --port 8000 &\nssh \"$HOST\" vllm serve m --port 8000 &\n"
            "vllm serve m --port 8001 &\n")
    dep = read_script("run.sh", text, knowledge.new_target())
    hosts = [(w.host.kind, w.host.node) for w in dep.workers]
    assert hosts == [("node", "node1"), ("node", "node2"), ("unknown", None), ("process", None)]
    assert len({w.host.network for w in dep.workers}) == 4  # no two share ports or localhost


def test_a_wrapper_script_beside_the_script_is_read_through_only_when_it_runs_its_arguments_unchanged():
    from pathlib import Path

    from disagg.schemas import knowledge
    from disagg.schemas.readers import read_script

    path = Path(__file__).resolve().parent / "fixtures" / "shell" / "wrapper-script" / "launch.sh"
    dep = read_script(str(path), path.read_text(), knowledge.new_target())
    # drop-first.sh shifts its arguments and not-here.sh is not in the folder: neither command is read, and each says why
    assert [(w.role, w.known("port"), w.span.line) for w in dep.engines()] == [("prefill", "30000", 2)]
    assert [(w.program, w.span.line) for w in dep.workers if w.notes] == [(UNKNOWN_WRAPPER, 3), (UNKNOWN_WRAPPER, 4)]


def test_a_serving_command_handed_to_a_wrapper_elsewhere_is_said_not_checked_and_a_known_launcher_is_read_through():
    from pathlib import Path

    from disagg.doctor.context import LintOptions
    from disagg.doctor.engine import lint_text
    from disagg.doctor.registry import default_registry

    path = Path(__file__).resolve().parent / "fixtures" / "shell" / "wrapper-elsewhere.sh"
    r = lint_text(str(path), path.read_text(), [x for x in default_registry() if not x.live], LintOptions())
    assert [(w.program, w.role) for w in r.deployment.engines()] == [("dynamo.trtllm", "prefill")]
    said = [(f.code, f.line, f.severity.name) for f in r.findings if "with-new-libs.sh" in f.message]
    assert said == [("DG405", 4, "INFO"), ("DG405", 5, "INFO")]  # not a silent skip, and no verdict on what it cannot see


def test_a_script_that_only_runs_other_scripts_says_which_instead_of_no_serving_command():
    from pathlib import Path

    from disagg.doctor.context import LintOptions
    from disagg.doctor.files import read_file

    path = Path(__file__).resolve().parent / "fixtures" / "shell" / "runs-role-scripts.sh"
    r = read_file(str(path), path.read_text(), LintOptions())
    assert r.deployment is None and (r.error.line, r.error.column) == (5, 3)
    assert "it runs /work/launch/start_worker.sh, whose code is not in it" in r.error.message
    assert "not known" in r.error.message


def test_srun_options_that_take_a_value_are_not_taken_for_the_program():
    line = 'srun --overlap -A "$ACCT" --jobid 7 --container-env A,B --container-name w python3 -m sglang.launch_server --disaggregation-mode prefill --port 30000\n'
    assert read(line) == ("sglang", "prefill", "30000")


def test_a_launcher_whose_servers_are_in_scripts_it_writes_is_read_or_says_so():
    from pathlib import Path

    from disagg.doctor.context import LintOptions
    from disagg.doctor.files import read_file

    path = Path(__file__).resolve().parent / "fixtures" / "shell" / "writes-entry-scripts.sh"
    r = read_file(str(path), path.read_text(), LintOptions())
    if r.deployment is not None:  # read through the written scripts
        assert sorted(w.role for w in r.deployment.engines()) == ["decode", "prefill"]
    else:  # or the reason names them: never the bare "no serving command found"
        assert "prefill_entry.sh, decode_entry.sh" in r.error.message and "not known" in r.error.message
