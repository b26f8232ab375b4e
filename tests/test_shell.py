"""The shell interpreter: alternatives are never paired, the forms around the engine are read, Kubernetes `$(VAR)`
is expanded from the container's env (fixtures in tests/fixtures/shell/, written for these tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from disagg.doctor.context import LintOptions
from disagg.doctor.engine import lint_text
from disagg.doctor.registry import default_registry
from disagg.schemas.model import Branch
from disagg.schemas.pairing import together
from disagg.schemas.shell import Launch, PStr, ShellReader

HERE = Path(__file__).resolve().parent / "fixtures" / "shell"
RULES = [r for r in default_registry() if not r.live]


def lint(name: str):
    path = HERE / name
    return lint_text(str(path), path.read_text(), RULES, LintOptions())


def launches(text: str) -> list[Launch]:
    return ShellReader(text).read(text)


def flag(launch: Launch, name: str) -> str | None:
    a = launch.command.flags.get(name)
    return a.text if a is not None else None


def pairs_by_line(result) -> list[tuple[int, int]]:
    return sorted((p.prefill.span.line, p.decode.span.line) for p in result.pairs)


def codes(result) -> list[str]:
    return [f.code for f in result.findings]


# --- alternatives ----------------------------------------------------------------------------------------------


def test_profiles_picked_by_a_case_are_never_paired_with_each_other():
    r = lint("profiles-in-branches.sh")
    assert pairs_by_line(r) == [(7, 9), (13, 15)]  # small with small, large with large; not 4 pairs
    assert "DG203" not in codes(r)  # block 16 against 32 would only come from pairing across profiles
    ports = [f for f in r.findings if f.code == "DG207"]
    assert sorted(f.line for f in ports) == [9, 15]  # within a profile both ends share the default port; never across


def test_variables_set_per_profile_give_one_process_per_profile():
    r = lint("profiles-in-variables.sh")
    engines = sorted((w.span.line, w.role, w.known("tp"), w.known("block_size")) for w in r.deployment.engines())
    assert engines == [(17, "prefill", "1", "16"), (17, "prefill", "4", "64"), (21, "decode", "1", "16"), (21, "decode", "4", "64")], engines
    assert len(r.pairs) == 2 and all(p.prefill.known("tp") == p.decode.known("tp") for p in r.pairs)
    assert "DG203" not in codes(r) and "DG204" not in codes(r)


def test_branches_chosen_by_role_or_host_rank_are_one_deployment():
    for name, expected in (("rank-selects-role.sh", [(6, 9)]), ("../readers/role-by-case.sh", [(12, 12)])):
        r = lint(name)
        assert pairs_by_line(r) == expected, name
        assert "DG203" in codes(r), name  # the pair is compared: its block sizes differ
        # one run of the script per role or host: the two are not known to share a network
        assert "DG207" not in codes(r), name


def test_a_case_on_a_literal_function_argument_takes_only_the_matching_branch():
    ls = launches((HERE / "role-by-function-arg.sh").read_text())
    assert [(flag(x, "block-size"), flag(x, "port")) for x in ls] == [("32", "8100"), ("16", "8101")]
    assert all(x.alternative is None for x in ls)  # both run in one invocation


def test_pairing_rule_for_branches():
    def b(frame, index, selector, values, per_process=False, excluded=()):
        return Branch(frame, index, selector, None if values is None else frozenset(values), frozenset(excluded), per_process)

    small, large = b("case@5", 0, "CONFIG", {"small"}), b("case@5", 1, "CONFIG", {"large"})
    assert together((small,), (small,)) and not together((small,), (large,))
    assert together((small,), None)  # an unconditional process runs with every profile
    # the same variable tested again later: `small` meets `small|tiny`, not `*` without small
    assert together((small,), (b("if@30", 0, "CONFIG", {"small", "tiny"}),))
    assert not together((small,), (b("if@30", 1, "CONFIG", None, excluded={"small"}),))
    prefill, decode = b("case@3", 0, "ROLE", {"prefill"}, True), b("case@3", 1, "ROLE", {"decode"}, True)
    assert together((prefill,), (decode,)) and not together((prefill,), (decode,), one_invocation=True)


def test_an_if_without_a_variable_test_is_exclusive_and_else_excludes_what_was_tested():
    text = ("if [ -f /etc/big ]; then\n  vllm serve a --block-size 16 &\nelse\n  vllm serve b --block-size 16 &\nfi\n"
            "if [ \"$MODE\" = fast ]; then vllm serve c & else vllm serve d & fi\n")
    a, b_, c, d = launches(text)
    assert a.alternative[0].selector is None and not together(a.alternative, b_.alternative)
    assert c.alternative[0].values == frozenset({"fast"}) and d.alternative[0].excluded == frozenset({"fast"})
    assert not together(c.alternative, d.alternative) and together(a.alternative, c.alternative)


def test_exclusive_branches_with_one_side_each_are_not_paired_and_say_so():
    text = ("#!/bin/bash\ncase \"$GPU\" in\n  h100) vllm serve m --kv-transfer-config '{\"kv_connector\":\"NixlConnector\",\"kv_role\":\"kv_producer\"}' ;;\n"
            "  a100) vllm serve m --kv-transfer-config '{\"kv_connector\":\"NixlConnector\",\"kv_role\":\"kv_consumer\"}' ;;\nesac\n")
    r = lint_text("alt.sh", text, RULES, LintOptions())
    assert sorted(w.role for w in r.deployment.engines()) == ["decode", "prefill"]
    assert r.pairs == []
    [note] = [f for f in r.findings if f.code == "DG405"]
    assert note.severity.label == "info" and "different branches of the script (GPU)" in note.message


# --- forms ------------------------------------------------------------------------------------------------------


def test_env_arithmetic_and_c_style_loops_before_eval():
    ls = launches((HERE / "env-arith-loop.sh").read_text())
    assert [(flag(x, "port"), flag(x, "tensor-parallel-size")) for x in ls] == [("8100", "4"), ("8200", "2"), ("8201", "2")]
    assert ls[0].command.env["CUDA_VISIBLE_DEVICES"].text == "0,1,2,3" and "HF_HUB_OFFLINE" not in ls[0].command.env
    assert [x.command.env["VLLM_NIXL_SIDE_CHANNEL_PORT"].text for x in ls] == ["5600", "5700", "5701"]


@pytest.mark.parametrize("expr, expected", [
    ("$((TP*PP))", "8"), ("$(( (TP + 2) / 3 ))", "2"), ("$((-7 / 2))", "-3"), ("$((BASE + 1))", None),
    ("$((TP ** 2))", "16"), ("$((TP / 0))", None), ("$((X))", "8"),
])
def test_arithmetic_is_evaluated_only_when_every_operand_is_known(expr, expected):
    [x] = launches(f"TP=4\nPP=2\nX=$((TP*PP))\nvllm serve m --max-num-seqs {expr}\n")
    value = flag(x, "max-num-seqs")
    if expected is None:
        assert value == expr  # left as written: unknown to the engine readers
    else:
        assert value == expected


def test_arithmetic_points_at_the_expression():
    text = "TP=2\nvllm serve m --tensor-parallel-size $((TP*2))\n"
    [x] = launches(text)
    span = x.command.flags["tensor-parallel-size"].span
    assert (span.line, span.column) == (2, text.splitlines()[1].index("$") + 1)


def test_docker_run_of_an_image_set_elsewhere_reads_vllm_arguments_and_nothing_else():
    r = lint("docker-image-args.sh")
    ws = sorted((w.role, w.program, w.known("model"), w.host.kind) for w in r.deployment.workers)
    assert ws == [("decode", "vllm", "Qwen/Qwen3-0.6B", "process"), ("prefill", "vllm", "Qwen/Qwen3-0.6B", "process")]
    assert pairs_by_line(r) == [(5, 8)]


def test_docker_run_with_unclear_arguments_is_not_guessed():
    assert launches('docker run -d "$IMAGE" Qwen/Qwen3-0.6B --port 8000 --tensor-parallel-size 2\n') == []
    [x] = launches("docker run vllm/vllm-openai:v0.10.1 Qwen/Qwen3-0.6B --port 8000\n")  # the image's entrypoint is known
    assert x.command.program == "vllm" and [a.text for a in x.command.args[:3]] == ["vllm", "serve", "Qwen/Qwen3-0.6B"]


def test_dynamo_0_3_sglang_example_workers_are_read():
    r = lint("dynamo-sglang-v03.sh")
    assert sorted((w.role, w.program) for w in r.deployment.engines()) == [("decode", "dynamo.sglang"), ("prefill", "dynamo.sglang")]
    assert "DG203" in codes(r)  # page size 16 against 32


def test_dynamo_0_3_component_scripts_are_read_where_the_file_runs_dynamo():
    r = lint("dynamo-components-v03.sh")
    ws = sorted((w.span.line, w.program, w.role, w.role_from) for w in r.deployment.engines())
    assert ws == [(5, "dynamo.vllm", "decode", "default"), (6, "dynamo.vllm", "prefill", "flag"),
                  (7, "dynamo.sglang", "prefill", "flag"), (9, "dynamo.sglang", "decode", "flag")]
    assert pairs_by_line(r) == [(6, 5), (7, 9)]
    assert [(f.code, f.line) for f in r.findings if f.code == "DG203"] == [("DG203", 7)]  # page size 16 against 64


def test_scripts_named_like_dynamo_components_are_not_read_without_dynamo():
    r = lint("components-not-dynamo.sh")
    assert r.deployment is None or not r.deployment.engines()


def test_bash_arrays_and_apptainer_environment_reach_the_engine():
    r = lint("apptainer-arrays.sh")
    ws = sorted((w.role, w.known("port"), w.known("max_model_len"), w.known("kv_connector"), w.known("side_channel_port"))
                for w in r.deployment.engines())
    assert ws == [("decode", "8200", "4096", "NixlConnector", "6200"), ("prefill", "8100", "8192", "NixlConnector", "6100")]
    assert "DG207" not in codes(r)  # each container has its own side-channel port
    same = (HERE / "apptainer-arrays.sh").read_text().replace("NNEL_PORT=6200", "NNEL_PORT=6100")
    assert "DG207" in codes(lint_text("same-port.sh", same, RULES, LintOptions()))


def test_seq_loops_and_a_proxy_path_from_a_command_substitution():
    r = lint("seq-loops-proxy.sh")
    ws = sorted((w.known("port"), w.role, w.role_from, w.known("side_channel_port")) for w in r.deployment.engines())
    assert ws == [("9100", "prefill", "router", "7100"), ("9101", "prefill", "router", "7101"), ("9201", "decode", "router", "7201")]
    assert len(r.pairs) == 2 and "DG203" in codes(r)  # prefill block 32 > decode 16
    assert [x.command.flags["port"].text for x in launches("for i in $(seq 0 $N); do vllm serve m --port 90$i & done\n")] == ["90$i"]


def test_kubernetes_expands_env_references_in_args_not_a_shell():
    r = lint("k8s-env-refs.yaml")
    p, d = sorted(r.deployment.engines(), key=lambda w: w.role, reverse=True)
    assert (p.role, p.known("model"), p.known("block_size"), p.known("kv_role")) == ("prefill", "Qwen/Qwen3-8B", "64", "kv_producer")
    assert p.known("max_model_len") is None and not p.settings["max_model_len"].known  # $(NOT_SET) stays unknown
    assert "$(MODEL)" in str(p.settings["served_model_name"].value)  # $$(MODEL) is the literal $(MODEL)
    assert (d.role, d.known("model"), d.known("block_size")) == ("decode", "Qwen/Qwen3-8B", "16")  # expanded before sh -c
    [f] = [f for f in r.findings if f.code == "DG203"]
    line = r.source_lines[f.line - 1]
    assert "$(BLOCK)" in line[f.column - 1 :]  # reported where the reference is written


def test_positions_survive_the_faster_lexer():
    text = "PORT=8100\nX='a b'  # c\nvllm serve \"m\" --port $PORT --kv-transfer-config '{\"kv_connector\":\"NixlConnector\"}' ''\n"
    [x] = launches(text)
    port = x.command.flags["port"].span
    assert (port.line, port.column) == (1, 6)
    cfg = x.command.flags["kv-transfer-config"]
    at = cfg.pos_of(cfg.text.index("NixlConnector"), len("NixlConnector"))
    assert text.splitlines()[at.line - 1][at.column - 1 : at.end_column - 1] == "NixlConnector"
    assert [a.text for a in x.command.positional] == ["m", ""]  # '' is an empty argument


@pytest.mark.parametrize("text", [
    # the commands the reader passes over unexpanded (`sleep`, `curl` with literal and $((...)) arguments) still
    # reach the engine when an argument names a container tool, a variable, or a function of that name
    "curl dock\"er\" run vllm/vllm-openai:v0.11.0 --model m",
    "X=docker; curl $X run vllm/vllm-openai:v0.11.0 --model m",
    "curl() { vllm serve m --port $1; }; curl 9000",
    "sleep ${A:=8000}; vllm serve m --port $A",
])
def test_commands_that_start_nothing_are_skipped_only_when_nothing_in_them_could(text):
    [x] = launches(text)
    assert x.command.program == "vllm"
    if "A:=" in text:
        assert flag(x, "port") == "8000"  # the assignment inside `sleep`'s argument happened
    if "curl()" in text:
        assert flag(x, "port") == "9000"  # the function ran where it was called, with its argument


def test_pstr_split_keeps_offsets():
    p = PStr(" ab  c ", [0, 1, 2, 3, 4, 5, 6])
    assert [(q.text, q.offs) for q in p.split()] == [("ab", [1, 2]), ("c", [5])]


# --- size -------------------------------------------------------------------------------------------------------


def test_a_script_of_many_profiles_pairs_within_each_profile_only():
    """The 1 MB script's cost was pairs: every prefill with every decode across profiles (bench/bench_shell.py times it)."""
    block = ("  p{i})\n    TP=$(({i} % 4 + 1))\n    start_{i}() {{ vllm serve m --port $((8100 + {i})) --tensor-parallel-size $TP "
             "--kv-transfer-config '{{\"kv_connector\":\"NixlConnector\",\"kv_role\":\"kv_$1\"}}' & }}\n"
             "    start_{i} producer\n    start_{i} consumer\n    ;;\n")
    text = "case \"$PROFILE\" in\n" + "".join(block.format(i=i) for i in range(300)) + "esac\n"
    r = lint_text("many.sh", text, RULES, LintOptions())
    assert len(r.deployment.engines()) == 600 and len(r.pairs) == 300
    assert all(p.prefill.known("tp") == p.decode.known("tp") for p in r.pairs)


@pytest.mark.parametrize("script", [
    'if [ "$1" = "prefill" ]; then\n  {P}\nelse\n  {D}\nfi\n',
    'case $ROLE in\n  p|prefill) {P} ;;\n  d|decode) {D} ;;\nesac\n',
    'if [[ $HOSTNAME == node-a ]]; then {P}; elif [[ $HOSTNAME == node-b ]]; then {D}; fi\n',
])
def test_role_and_host_selectors_pair_their_branches(script):
    kv = "--kv-transfer-config '{{\"kv_connector\":\"NixlConnector\",\"kv_role\":\"{}\"}}'"
    text = script.replace("{P}", "vllm serve m " + kv.format("kv_producer")).replace("{D}", "vllm serve m " + kv.format("kv_consumer"))
    r = lint_text("s.sh", "#!/bin/bash\n" + text, RULES, LintOptions())
    assert len(r.pairs) == 1, text
    assert all(b.per_process for w in r.deployment.engines() for b in w.alternative)


def test_profile_names_that_look_like_roles_are_still_profiles():
    text = ("case \"$PROFILE\" in\n  p0) vllm serve a --kv-transfer-config '{\"kv_connector\":\"NixlConnector\",\"kv_role\":\"kv_producer\"}' ;;\n"
            "  p1) vllm serve b --kv-transfer-config '{\"kv_connector\":\"NixlConnector\",\"kv_role\":\"kv_consumer\"}' ;;\nesac\n")
    r = lint_text("s.sh", text, RULES, LintOptions())
    assert r.pairs == []  # p0 and p1 are two profiles, not prefill and decode


def test_a_branch_with_one_side_only_is_said_not_checked():
    kv = "--kv-transfer-config '{{\"kv_connector\":\"NixlConnector\",\"kv_role\":\"{}\"}}'"
    p, d = "vllm serve m " + kv.format("kv_producer"), "vllm serve m " + kv.format("kv_consumer")
    text = f"#!/bin/bash\ncase \"$CONFIG\" in\n  full) {p} &\n    {d} ;;\n  prefill-only) {p} ;;\nesac\n"
    r = lint_text("s.sh", text, RULES, LintOptions())
    assert len(r.pairs) == 1
    [note] = [f for f in r.findings if f.code == "DG405"]
    assert note.line == 5 and "CONFIG branch 2" in note.message and "no decode partner" in note.message


def test_dynamo_sglang_processor_and_encoder_are_no_engines_and_the_multimodal_worker_takes_its_mode():
    r = lint("dynamo-sglang-multimodal.sh")
    ws = sorted((w.span.line, w.role, w.role_from, w.is_engine) for w in r.deployment.workers if w.program == "dynamo.sglang")
    assert ws == [(6, "processor", "flag", False), (7, "encode", "flag", False), (8, "prefill", "flag", True),
                  (10, "decode", "flag", True), (12, "aggregated", "flag", True)]
    assert pairs_by_line(r) == [(8, 10)]
    assert "DG611" not in codes(r)  # neither the processor nor the encoder is a decode side on mooncake


def test_dynamo_multimodal_example_worker_role_comes_from_its_worker_type():
    r = lint("dynamo-multimodal-vllm.sh")
    ws = sorted((w.span.line, w.program, w.role, w.role_from, w.known("kv_connector")) for w in r.deployment.engines())
    assert ws == [(8, "dynamo-multimodal:vllm", "prefill", "flag", "NixlConnector"),
                  (9, "dynamo-multimodal:vllm", "decode", "flag", "NixlConnector"),
                  (10, "dynamo-multimodal:vllm", "aggregated", "flag", "NixlConnector")]
    assert pairs_by_line(r) == [(8, 9)]
    assert not [f for f in r.findings if f.severity.name in ("ERROR", "WARNING")]  # side-channel ports are reserved per worker
    alone = (HERE / "dynamo-multimodal-vllm.sh").read_text().replace("python -m dynamo.frontend &\n", "")
    r = lint_text("no-dynamo.sh", alone, RULES, LintOptions())
    assert r.deployment is None or not r.deployment.engines()  # components/worker.py is Dynamo's only where Dynamo runs


def test_beside_dynamo_0_4_ingress_only_the_multimodal_worker_script_is_dynamos():
    # Dynamo 0.4+ ships no SGLang components/worker.py (that is 0.3, run with `dynamo run ... out=dyn`)
    text = "python -m dynamo.frontend &\npython3 components/worker.py --model-path m --disaggregation-mode prefill &\n"
    r = lint_text("own-worker.sh", text, RULES, LintOptions())
    assert r.deployment is None or not r.deployment.engines()


def test_a_role_chosen_at_run_time_with_the_kv_config_from_a_file_is_one_worker_per_role_branch():
    """`case "$SIDE"` whose prefill/decode branches read their KV config from different files (the defaults differ,
    though both read `${CONF}`), then extend the array after the case: each role branch is its own process, and the
    config, read from a file not in the run, stays Unknown."""
    r = lint("role-from-env-file-config.sh")
    ws = sorted(r.deployment.workers, key=lambda w: w.role)
    assert [(w.role, w.role_from) for w in ws] == [("decode", "name"), ("prefill", "name")]  # the case labels: names only
    assert all(not w.settings["kv_connector"].known for w in ws)
    assert [w.where("kv_connector").line for w in ws] == [17, 13]
    assert all(w.flags["enforce-eager"] for w in ws) and all(w.value("block_size") == "16" for w in ws)  # appended after the case
    assert pairs_by_line(r) == [(23, 23)]
    assert not [f for f in r.findings if f.severity.label in ("warning", "error")]


def test_a_run_time_value_computed_alike_in_two_branches_is_one_process():
    ls = launches((HERE / "same-runtime-value-in-branches.sh").read_text())
    assert len(ls) == 1 and ls[0].alternative is None


EXITING_BRANCHES = """#!/bin/bash
IP=$(hostname -I | awk '{print $1}')
if [[ "$IP" == "$PREFILL_IP" ]]; then
  python3 -m sglang.launch_server --model-path m --port 30000 --disaggregation-mode prefill --disaggregation-transfer-backend nixl
  exit 0
fi
if [[ "$IP" == "$DECODE_IP" ]]; then
  python3 -m sglang.launch_server --model-path m --port 30000 --disaggregation-mode decode --disaggregation-transfer-backend nixl
  exit 0
fi
"""


def test_branches_that_end_the_script_pick_one_process_per_run():
    """`if [ host is A ]; then serve; exit; fi` then the other host's server: one run of the script starts one of
    them (bash: `exit` ends the script), so they are one deployment, paired, but never neighbours on one host."""
    r = lint_text("pd.sh", EXITING_BRANCHES, RULES, LintOptions())
    assert r.pairs and "DG304" not in {f.code for f in r.findings}
    # an exit that runs only when something fails ends nothing by itself: both may start in one run
    conditional = EXITING_BRANCHES.replace("  exit 0\n", "  sleep 1 || exit 1\n")
    assert "DG304" in {f.code for f in lint_text("pd.sh", conditional, RULES, LintOptions()).findings}
    # nor does the exit of a child shell
    child = EXITING_BRANCHES.replace("  exit 0\n", "  bash -c 'exit 0'\n")
    assert "DG304" in {f.code for f in lint_text("pd.sh", child, RULES, LintOptions()).findings}


def test_a_guard_that_exits_and_starts_nothing_leaves_what_follows_on_the_script_path():
    """`if [ port busy ]; then die; fi` (die: `exit 1`) ends the runs where the port is busy; the servers started after
    it run together in every other run: one deployment whose processes are neighbours, paired and checked as such."""
    text = """#!/bin/bash
die(){ echo "$*" >&2; exit 1; }
port_free(){
  if ss -ltn "sport = :$1" | grep -q . ; then
    die "port $1 is in use"
  fi
}
port_free 8100
vllm serve m --port 8100 --kv-transfer-config '{"kv_connector":"P2pNcclConnector","kv_role":"kv_producer","kv_port":14579}' &
vllm serve m --port 8100 --kv-transfer-config '{"kv_connector":"P2pNcclConnector","kv_role":"kv_consumer","kv_port":14580}' &
wait
"""
    ls = launches(text)
    assert len(ls) == 2 and all(x.alternative is None for x in ls)
    r = lint_text("pd.sh", text, RULES, LintOptions())
    assert r.pairs and "DG304" in {f.code for f in r.findings}  # both on :8100 in one run


def _kv_roles(result) -> list[tuple[int, str, int]]:
    return sorted((w.span.line, w.known("kv_role"), w.settings["kv_role"].span.line) for w in result.deployment.workers)


def test_a_function_that_prints_the_kv_config_gives_each_caller_its_own():
    """`"$(kv_json kv_producer PORT)"` of a function whose body prints a here-document: the config it prints, with the
    caller's arguments in it; its `kv_ip` is set at run time and stays so, while its roles and ports are known. The
    role is located where the caller wrote it. `kill -0` between the two only asks whether a process is alive."""
    r = lint("kv-config-from-function.sh")
    assert _kv_roles(r) == [(21, "kv_consumer", 21), (25, "kv_producer", 25)]
    assert {w.known("kv_port") for w in r.deployment.workers} == {14579, 14580}
    assert all(not w.settings["kv_ip"].known for w in r.deployment.workers)
    assert pairs_by_line(r) == [(25, 21)]
    assert not [f for f in r.findings if f.severity.label in ("warning", "error")]
    # both roles written alike: the connector's pair cannot exchange KV (DG211), found through the function
    both = lint_text("pd.sh", (HERE / "kv-config-from-function.sh").read_text().replace('"kv_producer"', '"kv_consumer"'), RULES, LintOptions())
    assert "DG211" in codes(both)
    # one ZMQ port for both on one host (DG304), through the function's `kv_port`
    same = lint_text("pd.sh", (HERE / "kv-config-from-function.sh").read_text().replace(":-14580", ":-14579"), RULES, LintOptions())
    assert "DG304" in codes(same)


@pytest.mark.parametrize("body, known", [
    ('echo "{\\"kv_connector\\":\\"P2pNcclConnector\\",\\"kv_role\\":\\"$1\\"}"', True),  # echo: what it prints
    ("cat <<'JSON'\n{\"kv_connector\":\"P2pNcclConnector\",\"kv_role\":\"kv_producer\"}\nJSON", True),  # quoted tag: literal
    ('jq -n --arg r "$1" \'{kv_connector:"P2pNcclConnector",kv_role:$r}\'', False),  # another program's output: not known
    ('cat <<JSON\n{"kv_connector":"P2pNcclConnector","kv_role":"$(pick_role)"}\nJSON', False),  # a substitution inside
    ('echo -e "{\\"kv_role\\":\\"$1\\"}"', False),  # escapes interpreted: not read here
])
def test_what_a_printing_function_gives_is_known_only_when_all_it_prints_is(body, known):
    text = f"#!/bin/bash\nconf(){{\n{body}\n}}\nvllm serve m --kv-transfer-config \"$(conf kv_producer)\" &\n"
    w = lint_text("p.sh", text, RULES, LintOptions()).deployment.workers[0]
    s = w.settings.get("kv_role")
    assert (s is not None and s.known and s.value == "kv_producer") is known


_SERVE = "python3 -m sglang.launch_server --model-path m"


@pytest.mark.parametrize("first, second", [
    (f"(export CUDA_VISIBLE_DEVICES=0; {_SERVE} --port 1) &", f"{_SERVE} --port 2 &"),  # a ( ) subshell's export stays in it
    (f"export CUDA_VISIBLE_DEVICES=0 && {_SERVE} --port 1 | tee p.log &", f"{_SERVE} --port 2 &"),  # a list run with & too
    (f"run(){{ export CUDA_VISIBLE_DEVICES=0; {_SERVE} --port 1; }}\nrun &", f"{_SERVE} --port 2 &"),  # and a function run with &
    (f"export CUDA_VISIBLE_DEVICES=0\n{_SERVE} --port 1 &\nunset CUDA_VISIBLE_DEVICES", f"{_SERVE} --port 2 &"),  # unset
    (f"export CUDA_VISIBLE_DEVICES=0\n{_SERVE} --port 1 &", f"env -u CUDA_VISIBLE_DEVICES {_SERVE} --port 2 &"),  # env -u
    (f"export CUDA_VISIBLE_DEVICES=0\n{_SERVE} --port 1 &", f"docker run --gpus all img {_SERVE} --port 2"),  # a container's own env
])
def test_what_one_process_is_given_does_not_reach_the_next(first, second):
    ls = launches(f"#!/bin/bash\n{first}\n{second}\n")
    assert [x.env.get("CUDA_VISIBLE_DEVICES") is not None for x in ls] == [True, False], [x.env for x in ls]


def test_docker_run_passes_on_what_dash_e_names():
    ls = launches(f"#!/bin/bash\nexport HF_TOKEN=abc\nexport X=1\ndocker run -e HF_TOKEN img {_SERVE} --port 2\n")
    assert set(ls[0].env) == {"HF_TOKEN"}


def test_a_printing_function_s_stderr_is_not_its_output():
    text = ("#!/bin/bash\nkv(){\n  echo \"building $1\" >&2\n  cat <<JSON\n{\"kv_connector\":\"NixlConnector\",\"kv_role\":\"$1\"}\nJSON\n}\n"
            "vllm serve m --port 8100 --kv-transfer-config \"$(kv kv_producer)\" &\n")
    w = lint_text("p.sh", text, RULES, LintOptions()).deployment.workers[0]
    assert w.known("kv_role") == "kv_producer"


@pytest.mark.parametrize("word, args", [('"$@"', ["m", "--port", "8000"]), ('"$*"', ["m --port 8000"]), ("$@", ["m", "--port", "8000"])])
def test_all_positional_parameters_expand_as_bash_expands_them(word, args):
    text = f"#!/bin/bash\nserve() {{ vllm serve {word} & }}\nserve m --port 8000\n"
    (launch,) = launches(text)
    assert [a.text for a in launch.command.args[2:]] == args
