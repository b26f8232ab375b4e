"""Launch detection for the launch-script reader: which serving process a command starts, with its environment, the
words around it that say its role, its network, and the branches of the script it runs in.

`docker run IMAGE args` runs the image's entrypoint with `args` when they are not a program of their own: the vLLM
image's is `vllm serve`; for an image the file does not name (`$IMAGE`) or whose entrypoint is not known, the engine
is decided in `images.py` (`engine_from_image`) from what the arguments clearly are, else nothing is read.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .cmdline import (
    _WRAPPERS,
    CONTAINER_RUNTIMES,
    UNKNOWN_WRAPPER,
    Arg,
    Command,
    container_env,
    find_command,
    may_serve,
    parse_flags,
    script_run,
    shell_script_at,
)
from .dynamo_scripts import runs_dynamo, runs_dynamo_frontend
from .images import engine_from_image, vllm_serve_image
from .model import Branch
from .shell_expand import PStr, State
from .shell_words import Command as LexCommand
from .shell_words import Word
from .source import Span


class Launch(NamedTuple):
    command: Command
    hints: list[str]  # nearest first: log file / variable, branch, function and its arguments, comments and echo
    env: dict[str, Arg]
    network: str | None = None  # "host" when docker run --network host
    container: str | None = None  # docker --name
    image: str | None = None
    alternative: tuple | None = None  # the if/case branches it runs in (model.Branch after `finish`); None: unconditional
    remote: str | None = None  # `ssh HOST CMD`: the host it runs on
    epoch: int = 0  # State.epoch when it started: processes of different epochs never ran at the same time
    note: str | None = None  # what the reader could not check about it, in words (a wrapper it cannot follow)


class Launcher:
    """Turning a command into a Launch (mixed into ShellReader)."""

    passthrough: frozenset[str] = frozenset()  # wrapper scripts that run their arguments unchanged
    scripts_run: list[tuple[str, int]] = []  # after `read`: the shell scripts the script runs, whose code is elsewhere
    workdir: str = ""  # the folder the commands run in, when the file says (a container's workingDir)
    _runs_dynamo: bool | None = None
    _runs_frontend: bool | None = None

    def dynamo_workdir(self) -> str | None:
        """The folder commands run in where the file runs Dynamo (cmdline.runs_dynamo), else None."""
        if self._runs_dynamo is None:
            self._runs_dynamo = runs_dynamo(self.file_text)
        return self.workdir if self._runs_dynamo else None

    def dynamo_frontend(self) -> bool:
        """The file starts Dynamo 0.4+'s ingress (cmdline.runs_dynamo_frontend)."""
        if self._runs_frontend is None:
            self._runs_frontend = runs_dynamo_frontend(self.file_text)
        return self._runs_frontend

    def launch(self, expanded: list[PStr], assigns: dict[str, PStr], cmd: LexCommand, words: list[Word], st: State) -> None:
        texts = [p.text for p in expanded]
        if not may_serve(texts):
            script = script_run(texts)
            if script is not None and script.rsplit("/", 1)[-1] not in self.passthrough:
                st.scripts_run.append((script, cmd.start))
            return
        hints_near: list[str] = list(st.pipe)
        # log files and tee targets of this command: `> prefill.log`, `| tee decode_0.log`
        for j, t in enumerate(texts):
            if t in (">", "tee") and j + 1 < len(texts):
                hints_near.append(texts[j + 1])
        cut = next((j for j, t in enumerate(texts) if t == ">"), len(texts))
        expanded = expanded[:cut]
        network = container = image = None
        env: dict[str, Arg] = {}
        cache = st.env_args  # exported values are the same objects launch after launch: position them once
        for n in st.exported:
            v = st.vars.get(n)
            if isinstance(v, PStr):
                got = cache.get(n)
                if got is None or got[0] is not v:
                    got = cache[n] = (v, self.arg(v, cmd.start))
                env[n] = got[1]
        for n, v in assigns.items():
            env[n] = self.arg(v, cmd.start)
        docker = _docker(expanded)
        if docker is not None:
            expanded, denv, network, container, image = docker[:5]
            network, known_image = resolve_network(network, st)
            image = image or known_image
            # the caller's environment does not reach a process docker starts (run or exec); -e values do, and
            # `-e NAME` passes the caller's NAME on (docker run reference, --env)
            env = {n: env[n] for n in docker.passed if n in env}
            for n, v in denv.items():
                env[n] = self.arg(v, cmd.start)
            if container:
                hints_near.append(container)
        elif st.container is not None:  # a command of `docker run|exec ... sh -c SCRIPT` (container_script)
            network, container, image = st.container
        args = [self.arg(p, cmd.start) for p in expanded]
        while args and args[0].text.rsplit("/", 1)[-1] in self.passthrough:
            args = args[1:]  # `./wrapper.sh CMD` whose wrapper ends in `exec "$@"`
        # VAR=value words that came out of an expansion (eval "$CMD" with CUDA_VISIBLE_DEVICES=0 vllm serve ...)
        found = find_command(args, self.dynamo_workdir(), self.dynamo_frontend())
        if found is None and docker is not None and not docker.exec and args:
            found = _image_args(image, args)
        note = None
        if found is None and (docker is None or docker.exec):
            found, note = wrapped_command(args, self.dynamo_workdir(), self.dynamo_frontend())
        if found is None:
            return
        if found.unset:  # `env -u NAME` / `env -i`: what the caller exported does not reach the program
            env = {} if "*" in found.unset else {n: v for n, v in env.items() if n not in found.unset}
        env.update(found.env)
        if any(a.text.rsplit("/", 1)[-1] in CONTAINER_RUNTIMES for a in args[: len(args) - len(found.args)]):
            env = container_env(env)  # `APPTAINERENV_X=v apptainer exec ...`: X=v inside
            env.update(found.env)
        found = found._replace(env=env)
        hints = hints_near + [f.hint for f in reversed(st.frames) if f.hint] + list(reversed(st.recent[-6:]))
        var_hint = _command_var(words)
        if var_hint:
            hints.insert(len(hints_near), var_hint)
        path = self.path(st)
        st.launches.append(Launch(found, hints, env, network, container, image, tuple(path) if path else None, st.remote, st.epoch, note))
        st.recent.clear()

    def container_script(self, expanded: list[PStr], st: State) -> bool:
        """`docker run [options] IMAGE sh -c SCRIPT` (or `--entrypoint /bin/bash IMAGE -c SCRIPT`) and `docker exec
        [options] CONTAINER bash -c SCRIPT`: SCRIPT is read as the shell in the container runs it, with only the
        container's `-e` variables (none of this script's reach it) and the container's network; True when read so.
        A `docker run --name X` is remembered, so that `docker exec X` later runs on X's network."""
        docker = _docker(expanded)
        if docker is None:
            return False
        network, image = resolve_network(docker.network, st)
        image = docker.image or image
        if not docker.exec and docker.name:
            st.containers[docker.name] = (network, image)
        at = shell_script_at([p.text for p in docker.words])
        if at is None:
            return False
        saved_vars, saved_exported, saved_box = st.vars, st.exported, st.container
        st.vars, st.exported = {}, dict.fromkeys(docker.env)
        st.container = (network, docker.name, image)
        try:
            self.eval_words([docker.words[at]], dict(docker.env), st)
        finally:
            st.vars, st.exported, st.container = saved_vars, saved_exported, saved_box
        return True

    @staticmethod
    def finish(launch: Launch) -> Launch:
        """Branch elements as `model.Branch`, now that every branch of their if/case is known."""
        if not launch.alternative:
            return launch
        out = []
        for frame, index, selector, values, excluded in launch.alternative:
            if frame.mixed or selector is None:
                selector, values, excluded = None, frozenset({f"#{index}"}), frozenset()
            out.append(Branch(frame.ident, index, selector, values, excluded, frame.per_process))
        return launch._replace(alternative=tuple(out))


_ENV_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*", re.S)


def wrapped_command(args: list[Arg], workdir: str | None, frontend: bool = False) -> tuple[Command | None, str | None]:
    """`W ARGS... python3 -m sglang.launch_server ...` where W is a program the reader cannot follow (a wrapper script
    not beside this one, `mpirun` with an option it does not know, `conda run`, `docker exec`): the shell runs W, and
    whether W runs the serving command, and as written, is up to W. The command is returned as program
    UNKNOWN_WRAPPER (no engine, no role) with a note that says so, or (None, None) when no serving command follows."""
    first = next((k for k, a in enumerate(args) if not _ENV_WORD.fullmatch(a.text)), None)
    if first is None or not _runs_commands(args[first].text):
        return None, None
    for k in range(first + 1, len(args)):
        inner = find_command(args[k:], workdir, frontend)
        if inner is None or inner.program == "unknown-module":
            continue
        wrapper = " ".join(a.text for a in args[first:k])
        what = " ".join(a.text for a in inner.args[:3])
        note = (f"`{what}` is an argument of `{wrapper}`, whose code is not in this file: whether it runs that command, and as "
                "written, is not known (a wrapper script beside this one that ends in `exec \"$@\"` is read through)")
        return Command(UNKNOWN_WRAPPER, args[first:], {}, {}, [], {}, args[first].span), note
    return None, None


# Programs that run a command given as their arguments, whose way of running it the reader does not follow:
# launchers and container tools (with forms or options cmdline.py does not read) and wrapper scripts given by path.
_COMMAND_RUNNERS = frozenset(_WRAPPERS) | frozenset(CONTAINER_RUNTIMES) | {"docker", "podman", "nerdctl", "conda", "kubectl"}


def _runs_commands(word: str) -> bool:
    """The word names a program that runs other commands: a launcher or container tool, or a script given by its
    path (`/opt/x/with-libs.sh`, `./run.sh`). Any other first word (a here-document's `import sglang_router`, which the
    lexer reads as a line of the script) is no wrapper."""
    base = word.rsplit("/", 1)[-1]
    return base in _COMMAND_RUNNERS or base.endswith((".sh", ".bash")) or ("/" in word and "$" not in word)


def _command_var(words: list[Word]) -> str | None:
    """`$PREFILL_CMD` / `eval "$DECODE_CMD"`: the name of the variable that held the command."""
    for w in words[:2]:
        for s in w:
            if s.kind == "var" and len(s.text) > 1:
                return s.text
    return None


def _image_args(image: str | None, args: list[Arg]) -> Command | None:
    """`docker run IMAGE <args>` whose args are not a program: the image's entrypoint runs them, when it is known or
    the arguments clearly belong to one engine (the decision is `engine_from_image`'s)."""

    first = args[0].text
    model_first = len(args) > 1 and args[1].text.startswith("-") and not first.startswith("-") and "/" in first
    if not (first.startswith("-") or model_first):
        return None
    program = engine_from_image(image if image and "$" not in image else None, args)
    if program is None:
        return None
    flags, spans, positional = parse_flags(args)
    return Command(program, args, flags, spans, positional, {}, args[0].span)


class Container(NamedTuple):
    """What `docker run|create|exec` runs: the command inside, the environment it adds (`-e K=V`), the network, the
    container's name, the image (None for `exec`) and whether it is `exec` into a running container."""

    words: list[PStr]
    env: dict[str, PStr]
    network: str | None
    name: str | None
    image: str | None
    exec: bool = False
    passed: tuple[str, ...] = ()  # `-e NAME` without a value: NAME passed on from the caller's environment


# Options of `docker run` / `docker create` that take the next word as their value (the common ones; after one not
# listed the image is misread and the command is not found, never another one invented).
_RUN_VALUES = frozenset({"-e", "--env", "--network", "--net", "--name", "-v", "--volume", "-p", "--publish", "--gpus", "--ipc", "--shm-size", "-w",
                         "--workdir", "--entrypoint", "-u", "--user", "--runtime", "--ulimit", "--device", "--cap-add", "--env-file", "-m", "--memory",
                         "--cpus", "--pid", "--security-opt", "--label", "-l", "--mount", "--hostname", "-h", "--restart", "--platform", "--cpuset-cpus"})
# Every option of `docker exec` that takes a value; the others (-d -i -t --privileged) take none (docker/cli
# docs/reference/commandline/container_exec.md "Options": -d/--detach, --detach-keys, -e/--env, --env-file,
# -i/--interactive, --privileged, -t/--tty, -u/--user, -w/--workdir).
_EXEC_VALUES = frozenset({"-e", "--env", "--env-file", "-u", "--user", "-w", "--workdir", "--detach-keys"})


def _docker(words: list[PStr]) -> Container | None:
    """What `docker run ...`, `docker create ...` or `docker exec ... CONTAINER CMD` (podman, nerdctl: the same
    options) runs, or None for any other command."""
    texts = [w.text for w in words]
    joined = " ".join(texts)
    if "docker" not in joined and "podman" not in joined and "nerdctl" not in joined:
        return None  # what the search below answers, without splitting each word of every command
    start = next((i for i, t in enumerate(texts) if t.rsplit("/", 1)[-1] in ("docker", "podman", "nerdctl")), None)
    if start is not None and start + 2 < len(texts) and texts[start + 1] == "container":
        start += 1  # `docker container run|create|exec`: the same commands under their management-command name
    if start is None or start + 1 >= len(texts) or texts[start + 1] not in ("run", "create", "exec"):
        return None
    is_exec = texts[start + 1] == "exec"
    with_value = _EXEC_VALUES if is_exec else _RUN_VALUES
    env: dict[str, PStr] = {}
    passed: list[str] = []
    network = name = entrypoint = None
    i = start + 2
    while i < len(words) and texts[i].startswith("-"):
        flag, eq, val = texts[i].partition("=")
        value = PStr(val, words[i].offs[len(flag) + 1 :]) if eq else (words[i + 1] if flag in with_value and i + 1 < len(words) else None)
        if value is not None and not eq:
            i += 1
        if flag in ("-e", "--env") and value is not None and "=" in value.text:
            k, _, v = value.text.partition("=")
            env[k] = PStr(v, value.offs[len(k) + 1 :])
        elif flag in ("-e", "--env") and value is not None:
            passed.append(value.text)
        elif flag in ("--network", "--net") and value is not None:
            network = value.text
        elif flag == "--name" and value is not None:
            name = value.text
        elif flag == "--entrypoint" and value is not None:
            entrypoint = value
        i += 1
    if i >= len(words):
        return None
    if is_exec:  # docker exec CONTAINER CMD...: CMD runs as given, in that container's namespaces (no entrypoint)
        return Container(words[i + 1 :], env, f"container:{texts[i]}", texts[i], None, True, tuple(passed))
    image = texts[i]
    cmd = ([entrypoint] if entrypoint is not None else []) + words[i + 1 :]
    if entrypoint is None and (not cmd or find_command([Arg(p.text, Span(1, 1, 1, 1)) for p in cmd]) is None):
        cmd = image_entrypoint(image) + cmd  # ENTRYPOINT + the arguments (docker run's CMD)
    return Container(cmd, env, ("host" if network == "host" else network), name, image, False, tuple(passed))


def resolve_network(network: str | None, st: State) -> tuple[str | None, str | None]:
    """A container's network where it is another container's (`docker exec X`, `--network container:X`): X's own
    network and image when this script started X (`docker run --name X`), else the `container:X` it was given (whose
    namespace is not known: such a process shares its ports with nothing the reader knows of)."""
    if network and network.startswith("container:"):
        known = st.containers.get(network.partition(":")[2])
        if known is not None:
            return known
    return network, None


def image_entrypoint(image: str) -> list[PStr]:
    """The command an image runs when only arguments are given, for images whose entrypoint is known."""
    repo = image.split("@")[0].rsplit(":", 1)[0] if ":" in image.split("/")[-1] else image.split("@")[0]
    if repo.endswith("vllm/vllm-openai") or repo.endswith("vllm-openai") or vllm_serve_image(image) is not None:
        # vLLM's OpenAI image: ENTRYPOINT ["vllm", "serve"] (vllm-project/vllm docker/Dockerfile, vllm-openai stage)
        return [PStr("vllm"), PStr("serve")]
    return []
