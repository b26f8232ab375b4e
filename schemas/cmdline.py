"""Command lines of serving engines: which program a list of positioned words runs, and its flags.

Words come from the shell reader (`shell.py`) or from YAML lists, each with the source position of every character,
so that a finding inside `--kv-transfer-config '{"kv_connector": ...}'` points at the JSON key itself.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .dynamo_scripts import _DYNAMO_SGLANG_SCRIPTS, DYNAMO_MULTIMODAL_VLLM, dynamo_component, multimodal_worker
from .formats import JOB_SCRIPT_SUFFIXES, SCRIPT_SUFFIXES, SHELLS
from .source import Span


class Arg(NamedTuple):
    """One argument of a command, with where its text sits in the file."""

    text: str
    span: Span
    char_pos: tuple[tuple[int, int], ...] = ()  # (line, column) of each character of `text`, when known

    def pos_of(self, offset: int, length: int = 1) -> Span:
        """The span of text[offset:offset+length] inside the argument (the whole argument when unknown)."""
        if not self.char_pos or offset >= len(self.char_pos):
            return self.span
        line, col = self.char_pos[offset]
        end = self.char_pos[min(offset + length, len(self.char_pos)) - 1]
        return tuple.__new__(Span, (line, col, end[0], end[1] + 1))  # Span(...) without its Python-level __new__


# Flags that take no value: a bare `--x` followed by a word does not swallow it.
BOOL_FLAGS = frozenset(
    """
    enforce-eager trust-remote-code disable-log-requests disable-log-stats is-prefill-worker is-decode-worker enforce-disagg
    enable-expert-parallel disable-radix-cache enable-dp-attention skip-tokenizer-init enable-metrics remote-prefill
    conditional-disagg decode-fallback disable-custom-all-reduce enable-auto-tool-choice disable-uvicorn-access-log
    enable-prefix-caching enable-chunked-prefill multimodal-processor multimodal-encode-worker multimodal-worker
    """.split()
)
_BOOL_PREFIXES = ("no-", "enable-", "disable-", "is-", "skip-", "use-")


class Command(NamedTuple):
    program: str  # see engines.PROGRAMS
    args: list[Arg]
    flags: dict[str, Arg]  # --flag -> its value ("true" for bare flags), names with dashes
    flag_spans: dict[str, Span]  # --flag -> where the flag is written
    positional: list[Arg]
    env: dict[str, Arg]  # VAR=value words written before the program
    start: Span
    scheduler: str | None = None  # srun / mpirun: a cluster launcher picks the node it runs on, not this script
    unset: tuple[str, ...] | None = None  # `env -u NAME`: removed from the environment; `env -i`: ("*",), all of it


_MODULES = {
    "vllm.entrypoints.openai.api_server": "vllm",
    "vllm.entrypoints.cli.main": "vllm",
    "dynamo.vllm": "dynamo.vllm",
    "dynamo.frontend": "dynamo.frontend",
    # Dynamo's standalone KV router (0.6.0 on): routes to the workers of one `--endpoint ns.component.endpoint`
    "dynamo.router": "dynamo.router",
    "dynamo.sglang": "dynamo.sglang",
    "dynamo.sglang.worker": "dynamo.sglang",
    "dynamo.sglang.decode_worker": "dynamo.sglang",
    "dynamo.trtllm": "dynamo.trtllm",
    "sglang.launch_server": "sglang",
    "sglang_router.launch_router": "sglang-router",
    # SGLang's test load balancer in front of prefill and decode servers: LBArgs.add_cli_args takes `--prefill URL...`
    # and `--decode URL...` (nargs="+"), `--prefill-bootstrap-ports PORT...` (sgl-project/sglang
    # python/sglang/srt/disaggregation/mini_lb.py at 001c2ae0901cd353c26fed2f435887c867b73eed)
    "sglang.srt.disaggregation.mini_lb": "sglang-router",
    "sglang_router.launch_server": "sglang-router",
    # vLLM production-stack's router (vllm-project/production-stack src/vllm_router/app.py; its P/D routing in
    # src/vllm_router/routers/routing_logic.py, router_args.model_label_routing). Not by its console script's name:
    # `vllm-router` also names vllm-project/router, another program with other flags (image vllm/vllm-router)
    "vllm_router.app": "vllm-router",
    # LightLLM's one server module; `--run_mode` picks what it runs (engines.infer_role, lightllm.py)
    "lightllm.server.api_server": "lightllm",
}
# TensorRT-LLM's `trtllm-llmapi-launch CMD...` runs CMD (its words split again) on MPI rank 0, the rank that serves,
# and the MPI session's worker node on the others (NVIDIA/TensorRT-LLM tensorrt_llm/llmapi/trtllm-llmapi-launch at
# 020c89e64e49f24102f1b62be96a1a68283cdf7a: `task_with_command="${@:1}"` ... `$task_with_command` when mpi_rank is 0).
_WRAPPERS = ("exec", "nohup", "env", "time", "numactl", "taskset", "setsid", "stdbuf", "nice", "sudo", "timeout", "srun", "mpirun",
             "trtllm-llmapi-launch")
# Options of the launchers that take their value as the next word (`mpirun -np 2 CMD`, `srun -N 1 CMD`), so that the
# value is not taken for the program. Only options these launchers define (Open MPI mpirun(1), Slurm srun(1),
# numactl(8), taskset(1)); after any other option followed by a plain word the program is unknown and nothing is read.
_WRAPPER_VALUES = {
    "mpirun": frozenset({"-np", "-n", "-c", "-N", "-H", "--host", "-host", "--hostfile", "-hostfile", "--machinefile", "-x",
                         "--map-by", "--bind-to", "--rank-by", "--npernode", "-npernode", "--wdir", "-wdir", "--prefix"}),
    "srun": frozenset({"-N", "--nodes", "-n", "--ntasks", "-c", "--cpus-per-task", "-w", "--nodelist", "-p", "--partition",
                       "-t", "--time", "-J", "--job-name", "--gres", "--gpus", "-G", "--ntasks-per-node", "--mpi", "-o", "--output",
                       "-e", "--error", "--container-image", "--container-mounts", "--export", "-A", "--account", "--jobid",
                       "-q", "--qos", "--reservation", "-x", "--exclude", "-C", "--constraint", "-d", "--dependency", "--mem",
                       "--gpus-per-node", "--gpus-per-task", "--cpu-bind", "-m", "--distribution",
                       # the pyxis plugin's container options (NVIDIA/pyxis README, "Usage")
                       "--container-env", "--container-name", "--container-workdir"}),
    "numactl": frozenset({"-N", "-m", "-C", "-p", "-i"}),
    # `uv run [OPTIONS] [COMMAND]` runs COMMAND in the project's environment; its options that take a value
    # (https://docs.astral.sh/uv/reference/cli/#uv-run)
    "uv": frozenset({"--with", "-w", "--with-editable", "--with-requirements", "--python", "-p", "--env-file", "--directory",
                     "--project", "--package", "--extra", "--group", "--only-group", "--no-group", "--index", "--default-index",
                     "--index-url", "-i", "--extra-index-url", "--find-links", "-f", "--cache-dir", "--config-file",
                     "--python-platform", "--refresh-package", "--reinstall-package", "--upgrade-package", "-P"}),
}
_PROXIES = ("toy_proxy_server.py", "disagg_proxy_server.py", "disagg_prefill_proxy_server.py", "disagg_proxy_demo.py", "proxy_server.py")


# llm-d's P/D routing sidecar binary: its image builds cmd/pd-sidecar into /app/pd-sidecar, its entrypoint
# (llm-d/llm-d-router Dockerfile.sidecar at v0.4.0 86f5af75 and v0.10.0 71f4f099)
PD_SIDECAR_BINARY = "pd-sidecar"
# the program of a serving command started through a wrapper the reader cannot follow (shell_launch.wrapped_command)
UNKNOWN_WRAPPER = "unknown-wrapper"
_PROGRAMS = ("vllm", "sglang", "trtllm-serve", "sglang-router", "sglang_router", "docker", "podman", "nerdctl", "dynamo", PD_SIDECAR_BINARY)

_ENV_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*", re.S)


def may_serve(words: list[str]) -> bool:
    """False when no word can start a program `find_command` knows (a cheap test before positioning every word)."""
    for w in words:
        base = w.rsplit("/", 1)[-1]
        if base in _PROGRAMS or base.startswith("python") or w == "-m":
            return True
    return False


def find_command(args: list[Arg], dynamo_workdir: str | None = None, dynamo_frontend: bool = False) -> Command | None:
    """The serving program a command line runs, if any; `VAR=value` words before it become its environment.

    `python -m $MODULE` whose module is set at run time is returned as program "unknown-module", so the reader can
    say what it could not check instead of passing the file in silence. `dynamo_workdir` is not None where the file
    runs Dynamo (`runs_dynamo`): its value the folder the command runs in, when known; Dynamo's component scripts are
    read only then; `dynamo_frontend`: the file starts Dynamo 0.4+'s ingress, where the multimodal example's worker
    script is read."""
    i, env_at, scheduler, unset = _launcher_prefix([a.text for a in args])
    env: dict[str, Arg] = {}
    for k in env_at:
        name, _, value = args[k].text.partition("=")
        env[name] = Arg(value, args[k].pos_of(len(name) + 1, len(value)), args[k].char_pos[len(name) + 1 :])
    rest = args[i:]
    if rest and rest[0].text.rsplit("/", 1)[-1] in CONTAINER_RUNTIMES:
        env = container_env(env)
        rest, inside = _container_exec(rest)
        env.update(inside)
    if not rest:
        return None
    words = [a.text for a in rest]
    base = words[0].rsplit("/", 1)[-1]
    program, body = None, []
    if base == "vllm" and len(words) > 1 and words[1] == "serve":
        program, body = "vllm", rest[2:]
    elif base == "sglang" and len(words) > 1 and words[1] == "serve":
        # SGLang's console script: `sglang = "sglang.cli.main:main"`, whose `serve` subcommand parses the rest with
        # the server's own prepare_server_args and runs run_server, as `python -m sglang.launch_server` does
        # (bytedance-iaas/sglang@6ed5780c4fd3 python/pyproject.toml:191-192, python/sglang/cli/main.py:17-21,37-40,
        # python/sglang/cli/serve.py:101-141, python/sglang/launch_server.py:55-71)
        program, body = "sglang", rest[2:]
    elif base == "dynamo" and len(words) > 2 and words[1] == "serve" and not words[2].startswith("-"):
        # Dynamo 0.1-0.3's SDK: `dynamo serve GRAPH [-f CONFIG] [--Service.key=value ...]` serves the services of a graph
        # whose code (and the config it reads) decides what each runs and in which role (`graph` argument,
        # `-f/--config-file`: bytedance-iaas/dynamo deploy/sdk/src/dynamo/sdk/cli/serve.py:47-66 at
        # 1704b126f33b9263d4031081acef234fa0391337). Its options are no engine flags: none is read as one.
        return Command("dynamo-serve", rest, {}, {}, rest[2:3], env, rest[0].span, scheduler, tuple(unset) or None)
    elif base == "trtllm-serve":
        # `trtllm-serve disaggregated -c disagg_config.yaml` is the router in front of the context/generation servers
        program, body = ("trtllm-disagg-server", rest[2:]) if len(words) > 1 and words[1] == "disaggregated" else ("trtllm-serve", rest[1:])
    elif base.startswith("python") or (words[0].startswith("$") and len(words) > 2 and words[1] == "-m" and words[2] in _MODULES):
        # `$PYTHON -m vllm.entrypoints...` with the interpreter set outside the file: `-m` and a serving module say it
        j = 1
        while j < len(words) and words[j].startswith("-") and words[j] != "-m":
            j += 1  # python3 -u -m ...
        if j + 1 < len(words) and words[j] == "-m":
            module = words[j + 1]
            if module in _MODULES:
                program, body = _MODULES[module], rest[j + 2 :]
            elif "$" in module:
                program, body = "unknown-module", rest[j + 2 :]
        elif j < len(words) and words[j].endswith(_PROXIES):
            program, body = "vllm-proxy", rest[j + 1 :]
        elif j < len(words) and words[j].endswith(_DYNAMO_SGLANG_SCRIPTS):
            program, body = "dynamo.sglang", rest[j + 1 :]
        elif j < len(words) and dynamo_frontend and multimodal_worker(words[j], _flag_value(words[j + 1 :], "--worker-type")):
            program, body = DYNAMO_MULTIMODAL_VLLM, rest[j + 1 :]
        elif j < len(words) and dynamo_workdir is not None:
            given = {w.split("=", 1)[0] for w in words[j + 1 :] if w.startswith("--")}
            program = dynamo_component(words[j], given, dynamo_workdir)
            body = rest[j + 1 :]
    elif base in ("sglang-router", "sglang_router"):
        program, body = "sglang-router", rest[1:]
    elif base == PD_SIDECAR_BINARY:
        program, body = "llm-d-routing-sidecar", rest[1:]
    if program is None:
        return None
    flags, flag_spans, positional = parse_flags(body)
    return Command(program, rest, flags, flag_spans, positional, env, rest[0].span, scheduler, tuple(unset) or None)


def _launcher_prefix(words: list[str]) -> tuple[int, list[int], str | None, list[str]]:
    """Where the program of a command line starts, past `VAR=value` words and the launchers that run the rest
    (`_WRAPPERS` with their options): (its index, the indices of the `VAR=value` words, srun / mpirun when one
    places it, the names `env -u` removes, "*" for `env -i`)."""
    env_at: list[int] = []
    unset: list[str] = []
    scheduler = None
    i = 0
    while i < len(words):
        text = words[i]
        if _ENV_WORD.fullmatch(text):
            env_at.append(i)
            i += 1
        elif text.rsplit("/", 1)[-1] in _WRAPPERS or (text.rsplit("/", 1)[-1] == "uv" and i + 1 < len(words) and words[i + 1] == "run"):
            wrapper = text.rsplit("/", 1)[-1]
            if wrapper in ("srun", "mpirun"):
                scheduler = wrapper
            i += 2 if wrapper == "uv" else 1  # `uv run [OPTIONS] COMMAND`
            while i < len(words) and words[i].startswith("-") and words[i] not in ("--",):
                if wrapper == "env" and words[i] in ("-i", "--ignore-environment", "-"):
                    unset.append("*")  # env -i: start with an empty environment (coreutils env(1))
                if wrapper == "env" and words[i] in ("-u", "--unset") and i + 1 < len(words):
                    unset.append(words[i + 1])
                if wrapper == "env" and words[i] in ("-u", "--unset", "-C", "--chdir") and i + 1 < len(words):
                    i += 1  # env -u NAME: the option's value is not the program
                elif wrapper == "mpirun" and words[i] == "--mca" and i + 2 < len(words):
                    i += 2  # --mca KEY VALUE
                elif words[i] in _WRAPPER_VALUES.get(wrapper, ()) and i + 1 < len(words):
                    i += 1
                i += 1  # numactl --cpunodebind=0, timeout -s KILL ...
            if wrapper == "taskset" and i < len(words) and re.fullmatch(r"(0x)?[0-9a-fA-F]+|[0-9,-]+", words[i]):
                i += 1  # taskset MASK CMD / taskset -c 0-7 CMD: the first word after the options is the CPU set
            if i < len(words) and words[i - 1].rsplit("/", 1)[-1] == "timeout" and re.fullmatch(r"[\d.]+[smhd]?", words[i]):
                i += 1
        else:
            break
    return i, env_at, scheduler, unset


def script_run(words: list[str]) -> str | None:
    """The shell script a command line runs (`./start_worker.sh`, `srun ... /mnt/start_worker.sh`, `bash run.sh`,
    `source env.sh`, `sbatch job.slurm`), or None: what such a script starts is in that script, not in the command line."""
    i, _, _, _ = _launcher_prefix(words)
    shell = False
    if i < len(words) and words[i].rsplit("/", 1)[-1] == "sbatch":
        # `sbatch [options] FILE`: an option may take the next word as its value, so only a word named like a job
        # script is taken for the script
        name = next((w for w in words[i + 1 :] if _script_name(w).endswith(SCRIPT_SUFFIXES + JOB_SCRIPT_SUFFIXES)), "")
        return _script_name(name) or None
    if i < len(words) and (words[i].rsplit("/", 1)[-1] in SHELLS or words[i] in ("source", ".")):
        shell = True  # `bash FILE` / `source FILE` run FILE as a script, whatever its name ends in (`run_pd.slurm`)
        i += 1
        while i < len(words) and words[i].startswith("-") and words[i] not in ("-c",):
            i += 1
    if i >= len(words) or words[i] == "-c":
        return None
    name = _script_name(words[i])
    if name and (name.endswith(SCRIPT_SUFFIXES) or (shell and not name.startswith("-"))):
        return name
    return None


def _script_name(name: str) -> str:
    """A script's path as written, or its own name where only its folder is set at run time, else ""."""
    if "$" in name or "`" in name:  # `"${SCRIPT_DIR}/scripts/run.sh"`: the folder is set at run time, the script's own name is not
        folder, _, base = name.rpartition("/")
        return base if folder and "$" not in base and "`" not in base else ""
    return name


def _flag_value(words: list[str], flag: str) -> str | None:
    """The value of `--flag V` / `--flag=V` among command words, else None."""
    for k, w in enumerate(words):
        if w == flag and k + 1 < len(words):
            return words[k + 1]
        if w.startswith(flag + "="):
            return w[len(flag) + 1 :]
    return None


# `apptainer exec` / `singularity exec` options that take a value (apptainer.org docs, "apptainer exec" options);
# the word after the options is the image, the rest the command run in it. `run` starts the image's runscript: unknown.
_APPTAINER_VALUES = frozenset({"-B", "--bind", "--mount", "--env", "--env-file", "-H", "--home", "--pwd", "-W", "--workdir",
                               "-o", "--overlay", "--network", "--network-args", "--security", "--scratch", "-S", "--app",
                               "--hostname", "--apply-cgroups", "--drop-caps", "--add-caps"})


CONTAINER_RUNTIMES = ("apptainer", "singularity")
# What the command in the container sees of the caller's environment: `APPTAINERENV_X=v` (`SINGULARITYENV_X=v`) in
# the caller's environment is X=v inside, and `--env X=v` sets X (apptainer.org docs, user guide "Environment and
# Metadata": the APPTAINERENV_ prefix and the --env option of exec/run/shell).
_ENV_PREFIXES = ("APPTAINERENV_", "SINGULARITYENV_")


def container_env(env: dict[str, Arg]) -> dict[str, Arg]:
    """The environment of a command run by `apptainer exec`: the caller's, with the prefixed variables as their names."""
    out = dict(env)
    for name, value in env.items():
        for prefix in _ENV_PREFIXES:
            if name.startswith(prefix) and len(name) > len(prefix):
                out[name[len(prefix) :]] = value
    return out


def _container_exec(words: list[Arg]) -> tuple[list[Arg], dict[str, Arg]]:
    """The command of `apptainer exec [options] IMAGE CMD...` and the variables its `--env` options set, or nothing
    when it is not that form."""
    if len(words) < 3 or words[1].text != "exec":
        return [], {}
    env: dict[str, Arg] = {}
    i = 2
    while i < len(words) and words[i].text.startswith("-"):
        opt, eq, val = words[i].text.partition("=")
        if opt == "--env":
            arg = Arg(val, words[i].pos_of(len(opt) + 1, len(val)), words[i].char_pos[len(opt) + 1 :]) if eq else \
                (words[i + 1] if i + 1 < len(words) else None)
            if arg is not None and "=" in arg.text:
                name, _, value = arg.text.partition("=")
                env[name] = Arg(value, arg.pos_of(len(name) + 1, len(value)), arg.char_pos[len(name) + 1 :])
        i += 2 if words[i].text in _APPTAINER_VALUES else 1
    return words[i + 1 :], env


def flag_name(key: str) -> str:
    """The flag a config key or command-line word stands for, the one conversion the doctor uses: vLLM's
    FlexibleArgumentParser reads `--remote_prefill` as `--remote-prefill`, and Dynamo v0's ServiceConfig.as_args turns
    the key `remote-prefill` (or `remote_prefill`) into that flag. `remote_prefill`, `--remote-prefill` -> `remote-prefill`."""
    return key.lstrip("-").replace("_", "-")


def parse_flags(body: list[Arg]) -> tuple[dict[str, Arg], dict[str, Span], list[Arg]]:
    flags: dict[str, Arg] = {}
    flag_spans: dict[str, Span] = {}
    positional: list[Arg] = []
    j = 0
    while j < len(body):
        a = body[j]
        if a.text.startswith("--") and len(a.text) > 2:
            name, eq, value = a.text[2:].partition("=")
            name = flag_name(name)
            flag_spans[name] = a.pos_of(0, len(name) + 2)
            if eq:
                flags[name] = Arg(value, a.pos_of(len(name) + 3, len(value)), a.char_pos[len(name) + 3 :])
            elif _is_bool(name) or j + 1 >= len(body) or (body[j + 1].text.startswith("--") and len(body[j + 1].text) > 2):
                flags[name] = Arg("true", a.span, ())
            else:
                flags[name] = body[j + 1]
                j += 1
        elif a.text.startswith("-") and len(a.text) == 3 and a.text[1:] in ("tp", "pp", "dp") or a.text in ("-tp", "-pp", "-dp"):
            if j + 1 < len(body):
                full = {"-tp": "tensor-parallel-size", "-pp": "pipeline-parallel-size", "-dp": "data-parallel-size"}[a.text]
                flag_spans[full] = a.span
                flags[full] = body[j + 1]
                j += 1
        else:
            positional.append(a)
        j += 1
    return flags, flag_spans, positional


def _is_bool(name: str) -> bool:
    return name in BOOL_FLAGS or name.startswith(_BOOL_PREFIXES)


def _undefined_flags(system: str, flags: set[str]) -> list[str]:
    """The `--flags` that no release of `system` we have read defines (schemas/knowledge/generated/<system>.json)."""
    from .knowledge import flags_defined, known_releases

    defined = flags_defined(system, system, frozenset(known_releases()[system]))
    return [f for f in flags if f.startswith("--") and f not in defined]


# Shell options that take the next word as their value: `-o pipefail` / `+o`, bash's `-O shopt` / `+O`, `--rcfile F`,
# `--init-file F` (POSIX sh(1) synopsis `sh -c [-abCefhimnuvx] [-o option]... command_string`; bash(1) OPTIONS).
_SHELL_VALUES = ("--rcfile", "--init-file")


def shell_script_at(words: list[str], i: int = 0) -> int | None:
    """The index of the script that `SHELL [options] -c SCRIPT` runs, where words[i] names a shell: the shell reads its
    commands from the first word that is not an option once `-c` is among its options (`sh -c S`, `bash -lc S`,
    `bash -e -o pipefail -c S`, `/bin/bash -c -- S`: `--` or `-` ends the options). None for a shell without `-c`
    (it runs a script file), for `-c` with nothing after it, and for any other program."""
    if i >= len(words) or words[i].rsplit("/", 1)[-1] not in SHELLS:
        return None
    k, reads_c = i + 1, False
    while k < len(words):
        t = words[k]
        if t in ("--", "-"):
            k += 1
            break
        if t.startswith("--"):
            k += 2 if t in _SHELL_VALUES else 1
        elif re.fullmatch(r"[-+][A-Za-z]+", t):
            reads_c = reads_c or (t[0] == "-" and "c" in t)
            k += 2 if t[-1] in "oO" else 1
        else:
            break
    return k if reads_c and k < len(words) else None
