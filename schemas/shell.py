"""Read a launch script the way a shell would run it, far enough to find the serving processes it starts.

Variables are assigned and expanded in order (`${VAR:-default}` included), commands built in a variable are run
through `eval` or `$CMD`, functions run where they are called (with their arguments), loops run once per listed
item, every branch of an `if`/`case` is taken, and `docker run IMAGE cmd` runs `cmd`. Every expanded character
keeps the offset where it was written. A value the script cannot know (`$1`, `$(hostname)`, a variable from the
caller's environment) stays as its `$` text, which the engine readers treat as unknown.

For each process found: its command line, its environment, the words around it that say its role (comments and
`echo` lines before it, the `if`/`case` branch, the function and the arguments it was called with, its log file,
the variable that held it), and its network (`docker run --network host` shares the machine's).
"""

from __future__ import annotations

import bisect
import re
from typing import NamedTuple

from .cmdline import Arg, Command, find_command
from .shell_lex import Command as LexCommand
from .shell_lex import Lexer, Seg, Word
from .source import Span

MAX_STEPS = 20_000  # commands interpreted per script: a bound against pathological input
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(\+?)=")
_WRAPPERS = {"nohup", "exec", "env", "time", "numactl", "taskset", "setsid", "stdbuf", "sudo", "nice", "ionice", "timeout", "uv", "srun", "mpirun"}


class PStr:
    """Text with the source offset of each character (-1: made up by expansion, no source)."""

    __slots__ = ("text", "offs")

    def __init__(self, text: str = "", offs: list[int] | None = None):
        self.text = text
        self.offs = offs if offs is not None else [-1] * len(text)

    def __add__(self, other: "PStr") -> "PStr":
        return PStr(self.text + other.text, self.offs + other.offs)

    def split(self) -> list["PStr"]:
        out, start = [], None
        for i, ch in enumerate(self.text + " "):
            if ch in " \t\n":
                if start is not None:
                    out.append(PStr(self.text[start:i], self.offs[start:i]))
                    start = None
            elif start is None:
                start = i
        return out


class Launch(NamedTuple):
    command: Command
    hints: list[str]  # nearest first: log file / variable, branch, function and its arguments, comments and echo
    env: dict[str, Arg]
    network: str | None = None  # "host" when docker run --network host
    container: str | None = None  # docker --name
    image: str | None = None


class _Frame:
    __slots__ = ("kind", "hint", "branch", "assigned")

    def __init__(self, kind: str, hint: str = ""):
        self.kind = kind  # if | case | func | loop
        self.hint = hint
        self.branch = 0
        self.assigned: dict[str, dict[int, tuple[PStr, str]]] = {}  # name -> branch -> (value, the branch's words)


class _State:
    def __init__(self) -> None:
        self.vars: dict[str, PStr | list[PStr]] = {}
        self.exported: set[str] = set()
        self.funcs: dict[str, list[LexCommand]] = {}
        self.called: set[str] = set()
        self.frames: list[_Frame] = []
        self.positional: list[list[PStr]] = [[]]
        self.recent: list[str] = []  # comments and echo text since the last launch
        self.pipe: list[str] = []  # tee targets of the pipeline being run
        self.forks: dict[str, list[tuple[PStr, str]]] = {}  # set differently in each branch of an if/case
        self.launches: list[Launch] = []
        self.steps = 0
        self.depth = 0


class ShellReader:
    def __init__(self, file_text: str, base_env: dict[str, Arg] | None = None):
        self.file_text = file_text
        self.starts = [0] + [m.end() for m in re.finditer("\n", file_text)]
        self.base_env = base_env or {}

    # --- positions ----------------------------------------------------------------------------------------------

    def line_col(self, off: int) -> tuple[int, int]:
        i = bisect.bisect_right(self.starts, off) - 1
        return i + 1, off - self.starts[i] + 1

    def arg(self, p: PStr, fallback: int) -> Arg:
        known = [o for o in p.offs if o >= 0]
        first = known[0] if known else fallback
        last = known[-1] if known else fallback
        line, col = self.line_col(first)
        eline, ecol = self.line_col(last)
        # Positions inside a word matter only where a part of it is reported: VAR=value, --flag=value, JSON.
        needs = known and ("=" in p.text or "{" in p.text)
        chars = tuple(self.line_col(o) if o >= 0 else (line, col) for o in p.offs) if needs else ()
        return Arg(p.text, Span(line, col, eline, ecol + 1), chars)

    # --- running ------------------------------------------------------------------------------------------------

    def read(self, text: str, offs: list[int] | None = None) -> list[Launch]:
        st = _State()
        for name, a in self.base_env.items():
            st.vars[name] = PStr(a.text)
            st.exported.add(name)
        self.run(Lexer(text, offs).commands(), st)
        for name in list(st.funcs):  # functions never called still say what they would start
            if name not in st.called:
                st.called.add(name)
                self.call(name, [], st)
        return st.launches

    def run(self, cmds: list[LexCommand], st: _State) -> None:
        i = 0
        while i < len(cmds):
            st.steps += 1
            if st.steps > MAX_STEPS:
                return
            cmd = cmds[i]
            words = cmd.words
            # function definitions: name ( ) { ... }  /  function name { ... }
            if cmd.end == "(" and len(words) == 1 and i + 1 < len(cmds) and not cmds[i + 1].words and cmds[i + 1].end == ")":
                name = _plain(words[0])
                body, i = _brace_body(cmds, i + 2)
                if name:
                    st.funcs[name] = body
                continue
            if words and _plain(words[0]) == "function" and len(words) >= 2:
                name = (_plain(words[1]) or "").rstrip("()")  # `function $(...)`: a name made at run time, not a function we can call
                body, i = _brace_body(cmds, i + 1 if len(words) == 2 else i)
                if name:
                    st.funcs[name] = body
                continue
            first = _plain(words[0]) if words else ""
            if first in ("for", "while", "until", "select"):
                body, nxt = _loop_body(cmds, i)
                self.loop(cmd, body, st)
                i = nxt
                continue
            if cmd.end == "|":  # `cmd | tee prefill.log`: the log file names the process
                j = i
                while j + 1 < len(cmds) and cmds[j].end == "|":
                    j += 1
                    ws = [self.join(w, st).text for w in cmds[j].words]
                    if ws and ws[0] == "tee":
                        st.pipe.extend(x for x in ws[1:] if not x.startswith("-"))
            self.simple(cmd, st)
            if cmd.end != "|":
                st.pipe.clear()
            i += 1

    def loop(self, head: LexCommand, body: list[LexCommand], st: _State) -> None:
        words = head.words
        items: list[PStr] = []
        if _plain(words[0]) == "for" and len(words) >= 3 and _plain(words[2]) == "in":
            for w in words[3:]:
                items.extend(self.expand(w, st))
        var = _plain(words[1]) if _plain(words[0]) == "for" and len(words) > 1 else ""
        st.frames.append(_Frame("loop"))
        literal = [p for p in items if "$" not in p.text][:8]
        for value in literal or [None]:
            if var:
                st.vars[var] = value if value is not None else PStr(f"${var}")
            self.run(body, st)
        st.frames.pop()

    def call(self, name: str, args: list[PStr], st: _State) -> None:
        if st.depth > 8:
            return
        st.depth += 1
        st.frames.append(_Frame("func", " ".join([name] + [a.text for a in args])))
        st.positional.append(args)
        self.run(st.funcs[name], st)
        st.positional.pop()
        st.frames.pop()
        st.depth -= 1

    def simple(self, cmd: LexCommand, st: _State) -> None:
        words = list(cmd.words)
        st.recent.extend(c for c in cmd.comments if c)
        if not words:
            if cmd.end == ";;" and st.frames and st.frames[-1].kind == "case":
                st.frames[-1].hint = ""
            return
        head = _plain(words[0])
        if head in ("fi", "esac", "done", "}"):
            if head in ("fi", "esac") and st.frames and st.frames[-1].kind in ("if", "case"):
                self._close(st.frames.pop(), st)
            return
        while words and _plain(words[0]) in ("then", "do", "else", "{", "!"):
            if _plain(words[0]) == "else" and st.frames and st.frames[-1].kind == "if":
                st.frames[-1].hint = ""
                st.frames[-1].branch += 1
                st.recent.clear()
            words = words[1:]
        if not words:
            return
        head = _plain(words[0])
        if head in ("if", "elif"):
            text = " ".join(p.text for w in words[1:] for p in self.expand(w, st))
            if head == "if":
                st.frames.append(_Frame("if", text))
            elif st.frames and st.frames[-1].kind == "if":
                st.frames[-1].hint = text
                st.frames[-1].branch += 1
            st.recent.clear()
            return
        if head == "case":
            st.frames.append(_Frame("case"))
            return
        if cmd.end == ")" and st.frames and st.frames[-1].kind == "case":
            st.frames[-1].hint = " ".join(_plain(w) or "" for w in words)
            st.frames[-1].branch += 1
            st.recent.clear()
            return
        expanded: list[PStr] = []
        assigns: dict[str, PStr] = {}
        k = 0
        # VAR=value words before the command are its environment (or plain assignments when nothing follows)
        while k < len(words) and self._assignment(words[k]) is not None:
            name, value = self._assign_value(words[k], st)
            assigns[name] = value
            k += 1
        if k == len(words):
            for name, value in assigns.items():
                st.vars[name] = value
                self._record(name, value, st)
            return
        for w in words[k:]:
            expanded.extend(self.expand(w, st))
        if not expanded:
            return
        name = expanded[0].text
        if name in ("export", "local", "declare", "readonly", "typeset"):
            for w in words[k + 1 :]:
                if self._assignment(w) is not None:
                    var, value = self._assign_value(w, st)
                    st.vars[var] = value
                    self._record(var, value, st)
                    if name == "export":
                        st.exported.add(var)
                elif name == "export" and _plain(w):
                    st.exported.add(_plain(w) or "")
            return
        if name == "echo" or name == "printf":
            st.recent.append(" ".join(p.text for p in expanded[1:]))
            return
        if name == "eval":
            joined = PStr()
            for j, p in enumerate(expanded[1:]):
                joined = joined + (PStr(" ") if j else PStr()) + p
            if st.depth < 8:
                st.depth += 1
                self.run(Lexer(joined.text, joined.offs).commands(), _scope(st, assigns))
                st.depth -= 1
            return
        if name in st.funcs:
            st.called.add(name)
            self.call(name, expanded[1:], st)
            return
        forked = next((v for v in _var_names(words) if v in st.forks), None)
        if forked is None:
            self.launch(expanded, assigns, cmd, words, st)
            return
        # A variable set differently in each branch of an if/case: one process per branch, named by that branch.
        saved, recent = st.vars.get(forked), list(st.recent)
        for value, hint in st.forks[forked]:
            st.vars[forked] = value
            st.recent = recent + [hint]
            again = [p for w in words[k:] for p in self.expand(w, st)]
            self.launch(again, assigns, cmd, words, st)
        if saved is not None:
            st.vars[forked] = saved
        st.recent = []

    def _record(self, name: str, value: PStr, st: _State) -> None:
        frame = next((f for f in reversed(st.frames) if f.kind in ("if", "case")), None)
        if frame is not None:
            frame.assigned.setdefault(name, {})[frame.branch] = (value, " ".join([frame.hint] + st.recent))

    def _close(self, frame: _Frame, st: _State) -> None:
        """A variable set differently in branches that name different roles ("This is a decoder" / "... prefiller")
        forks the processes started with it; other branch-dependent values keep the last one assigned."""
        from .engines import role_from_words

        for name, by_branch in frame.assigned.items():
            values = list(by_branch.values())
            roles = {role_from_words(hint) for _, hint in values} - {None}
            if len(values) >= 2 and len({v.text for v, _ in values}) >= 2 and len(roles) >= 2:
                st.forks[name] = values

    def launch(self, expanded: list[PStr], assigns: dict[str, PStr], cmd: LexCommand, words: list[Word], st: _State) -> None:
        hints_near: list[str] = list(st.pipe)
        # log files and tee targets of this command: `> prefill.log`, `| tee decode_0.log`
        texts = [p.text for p in expanded]
        for j, t in enumerate(texts):
            if t in (">", "tee") and j + 1 < len(texts):
                hints_near.append(texts[j + 1])
        cut = next((j for j, t in enumerate(texts) if t == ">"), len(texts))
        expanded = expanded[:cut]
        network = container = image = None
        env: dict[str, Arg] = {n: self.arg(v, cmd.start) if isinstance(v, PStr) else Arg("", Span(1, 1, 1, 1)) for n, v in st.vars.items() if n in st.exported and isinstance(v, PStr)}
        for n, v in assigns.items():
            env[n] = self.arg(v, cmd.start)
        docker = _docker(expanded)
        if docker is not None:
            expanded, denv, network, container, image = docker
            for n, v in denv.items():
                env[n] = self.arg(v, cmd.start)
            if container:
                hints_near.append(container)
        args = [self.arg(p, cmd.start) for p in expanded]
        # VAR=value words that came out of an expansion (eval "$CMD" with CUDA_VISIBLE_DEVICES=0 vllm serve ...)
        found = find_command(args)
        if found is None:
            return
        env.update(found.env)
        found = found._replace(env=env)
        hints = hints_near + [f.hint for f in reversed(st.frames) if f.hint] + list(reversed(st.recent[-6:]))
        var_hint = _command_var(words)
        if var_hint:
            hints.insert(len(hints_near), var_hint)
        st.launches.append(Launch(found, hints, env, network, container, image))
        st.recent.clear()

    # --- expansion ----------------------------------------------------------------------------------------------

    @staticmethod
    def _assignment(word: Word) -> str | None:
        if not word or word[0].kind != "lit" or word[0].quoted:
            return None
        m = _ASSIGN.match(word[0].text)
        return m.group(1) if m else None

    def _assign_value(self, word: Word, st: _State) -> tuple[str, PStr]:
        m = _ASSIGN.match(word[0].text)
        name, plus = m.group(1), m.group(2)
        head = Seg("lit", word[0].text[m.end() :], word[0].offs[m.end() :], word[0].quoted)
        rest = ([head] if head.text else []) + word[1:]
        if rest and rest[0].kind == "array":
            items = [p for item in rest[0].items or [] for p in self.expand(item, st)]
            st.vars[name] = items
            return name, items[0] if items else PStr()
        value = self.join(rest, st)
        if plus:
            old = st.vars.get(name)
            value = (old if isinstance(old, PStr) else PStr()) + value
        return name, value

    def join(self, segs: list[Seg], st: _State) -> PStr:
        """A word expanded without field splitting (assignment values, quoted text)."""
        out = PStr()
        for s in segs:
            parts = self.seg(s, st)
            for j, p in enumerate(parts):
                out = out + (PStr(" ") if j else PStr()) + p
        return out

    def expand(self, word: Word, st: _State) -> list[PStr]:
        """A word after expansion: unquoted expansions split into several words."""
        words: list[PStr] = []
        cur: PStr | None = None
        for s in word:
            parts = self.seg(s, st)
            if s.kind in ("var", "sub") and not s.quoted and s.kind == "var":
                pieces: list[PStr] = []
                for p in parts:
                    pieces.extend(p.split() if "$" not in p.text or p.text.count(" ") else [p])
                if not pieces:
                    continue
                cur = pieces[0] if cur is None else cur + pieces[0]
                for extra in pieces[1:]:
                    words.append(cur)
                    cur = extra
            else:
                for j, p in enumerate(parts):
                    if j:
                        words.append(cur if cur is not None else PStr())
                        cur = p
                    else:
                        cur = p if cur is None else cur + p
        if cur is not None:
            words.append(cur)
        return words

    def seg(self, s: Seg, st: _State) -> list[PStr]:
        if s.kind == "lit":
            return [PStr(s.text, list(s.offs))]
        if s.kind == "array":
            return [p for item in s.items or [] for p in self.expand(item, st)]
        raw_off = list(range(s.offs[0], s.offs[1])) if len(s.offs) == 2 else []
        if s.kind == "sub":
            return [PStr(s.text, raw_off[: len(s.text)] + [-1] * max(0, len(s.text) - len(raw_off)))]
        name, op = s.text, s.op
        unresolved = PStr(f"${{{name}}}", (raw_off + [-1] * 64)[: len(name) + 3])
        value = self.lookup(name, st)
        if op.startswith("[") and isinstance(value, list):
            return value if op in ("[@]", "[*]") else value[:1]
        if isinstance(value, list):
            value = value[0] if value else PStr()
        if op == "#":
            return [unresolved]
        if op in (":-", "-", ":=", "="):
            if value is None or (op.startswith(":") and not value.text):
                default = self.join(s.arg or [], st)
                if op.endswith("="):
                    st.vars[name] = default
                return [default]
            return [value]
        if op in (":+", "+"):
            return [self.join(s.arg or [], st)] if value is not None and value.text else [PStr()]
        if op and op[0] in "?":
            return [value] if value is not None else [unresolved]
        if op:  # ${X%pat}, ${X/a/b}, ...: not worth interpreting
            return [unresolved]
        return [value if value is not None else unresolved]

    def lookup(self, name: str, st: _State) -> PStr | list[PStr] | None:
        if name.isdigit():
            args = st.positional[-1]
            k = int(name)
            return args[k - 1] if 0 < k <= len(args) else None
        if name in ("@", "*"):
            return list(st.positional[-1]) or None
        return st.vars.get(name)


def _var_names(words: list[Word]) -> list[str]:
    out: list[str] = []

    def walk(segs):
        for s in segs:
            if s.kind == "var":
                out.append(s.text)
                walk(s.arg or [])
            elif s.kind == "array":
                for item in s.items or []:
                    walk(item)

    for w in words:
        walk(w)
    return out


def _scope(st: _State, assigns: dict[str, PStr]) -> _State:
    for name, value in assigns.items():
        st.vars[name] = value
    return st


def _plain(word: Word) -> str | None:
    """The text of a word with no expansion in it, else None."""
    if all(s.kind == "lit" for s in word):
        return "".join(s.text for s in word)
    return None


def _command_var(words: list[Word]) -> str | None:
    """`$PREFILL_CMD` / `eval "$DECODE_CMD"`: the name of the variable that held the command."""
    for w in words[:2]:
        for s in w:
            if s.kind == "var" and len(s.text) > 1:
                return s.text
    return None


def _brace_body(cmds: list[LexCommand], i: int) -> tuple[list[LexCommand], int]:
    """Commands between `{` (at or after i) and its `}`; the index after it."""
    while i < len(cmds) and not (cmds[i].words and _plain(cmds[i].words[0]) == "{"):
        i += 1
    if i >= len(cmds):
        return [], i
    depth, body = 0, []
    first = cmds[i]
    rest = LexCommand(first.words[1:], first.end, first.comments, first.start)
    queue = [rest] + cmds[i + 1 :]
    for j, c in enumerate(queue):
        heads = [_plain(w) for w in c.words]
        depth += heads.count("{") - heads.count("}")
        if heads and heads[0] == "}" and depth < 0:
            return body, i + 1 + j
        if heads and heads[-1] == "}" and depth < 0:
            body.append(LexCommand(c.words[:-1], c.end, c.comments, c.start))
            return body, i + 1 + j
        body.append(c)
    return body, len(cmds)


def _loop_body(cmds: list[LexCommand], i: int) -> tuple[list[LexCommand], int]:
    depth, body = 0, []
    for j in range(i + 1, len(cmds)):
        c = cmds[j]
        head = _plain(c.words[0]) if c.words else None
        if head in ("for", "while", "until", "select"):
            depth += 1
        if head == "done":
            if depth == 0:
                return body, j + 1
            depth -= 1
        body.append(c)
    return body, len(cmds)


def _docker(words: list[PStr]):
    """(command words, env, network, container name, image) of `docker run ...`, or None."""
    texts = [w.text for w in words]
    start = next((i for i, t in enumerate(texts) if t.rsplit("/", 1)[-1] in ("docker", "podman", "nerdctl")), None)
    if start is None or start + 1 >= len(texts) or texts[start + 1] not in ("run", "create"):
        return None
    env: dict[str, PStr] = {}
    network = name = entrypoint = None
    i = start + 2
    with_value = {"-e", "--env", "--network", "--net", "--name", "-v", "--volume", "-p", "--publish", "--gpus", "--ipc", "--shm-size", "-w",
                  "--workdir", "--entrypoint", "-u", "--user", "--runtime", "--ulimit", "--device", "--cap-add", "--env-file", "-m", "--memory",
                  "--cpus", "--pid", "--security-opt", "--label", "-l", "--mount", "--hostname", "-h", "--restart", "--platform", "--cpuset-cpus"}
    while i < len(words) and texts[i].startswith("-"):
        flag, eq, val = texts[i].partition("=")
        value = PStr(val, words[i].offs[len(flag) + 1 :]) if eq else (words[i + 1] if flag in with_value and i + 1 < len(words) else None)
        if value is not None and not eq:
            i += 1
        if flag in ("-e", "--env") and value is not None and "=" in value.text:
            k, _, v = value.text.partition("=")
            env[k] = PStr(v, value.offs[len(k) + 1 :])
        elif flag in ("--network", "--net") and value is not None:
            network = value.text
        elif flag == "--name" and value is not None:
            name = value.text
        elif flag == "--entrypoint" and value is not None:
            entrypoint = value
        i += 1
    if i >= len(words):
        return None
    image = texts[i]
    cmd = ([entrypoint] if entrypoint is not None else []) + words[i + 1 :]
    if not cmd or cmd[0].text.startswith("-"):
        cmd = image_entrypoint(image) + cmd
    return cmd, env, ("host" if network == "host" else network), name, image


def image_entrypoint(image: str) -> list[PStr]:
    """The command an image runs when only arguments are given, for images whose entrypoint is known."""
    repo = image.split("@")[0].rsplit(":", 1)[0] if ":" in image.split("/")[-1] else image.split("@")[0]
    if repo.endswith("vllm/vllm-openai") or repo.endswith("vllm-openai"):
        # vLLM's OpenAI image: ENTRYPOINT ["vllm", "serve"] (vllm-project/vllm docker/Dockerfile, vllm-openai stage)
        return [PStr("vllm"), PStr("serve")]
    return []
