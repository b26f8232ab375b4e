"""Read a launch script the way a shell would run it, far enough to find the serving processes it starts.

Variables are assigned and expanded in order (`${VAR:-default}`, `$((TP*PP))` included), commands built in a variable
are run through `eval` or `$CMD`, `env A=B cmd` runs `cmd` with A set, functions run where they are called, loops run
once per item (`shell_flow.py`), and `docker run IMAGE cmd` / `docker exec CONTAINER cmd` run `cmd`, a `sh -c`
script included (`shell_launch.py`). Every expanded character
keeps the offset where it was written (`shell_expand.py`, lexing in `shell_lex.py` into `shell_words.py`). A value the script cannot know
(`$1`, `$(hostname)`, a variable from the caller's environment) stays as its `$` text, which the engine readers
treat as unknown.

For each process found: its command line, its environment, the words around it that say its role (comments and
`echo` lines before it, the `if`/`case` branch, the function and the arguments it was called with, its log file,
the variable that held it), its network (`docker run --network host` shares the machine's; `docker exec X` runs on
X's), and the branches it runs in, so that processes of exclusive alternatives are never paired (see `shell_flow.py`).
"""

from __future__ import annotations

import re

from .cmdline import Arg
from .shell_expand import Expander, PStr, State
from .shell_flow import Flow, _plain, shell_string
from .shell_launch import Launch, Launcher, image_entrypoint
from .shell_output import Output
from .shell_words import Command as LexCommand

_APPEND = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+=")


def _appended(branch_value, old, new):
    """A branch's value with what `+=` added to `old` (giving `new`) added to it too."""
    if isinstance(new, list):
        added = new[len(old):] if isinstance(old, list) else new[1:] if isinstance(old, PStr) else new
        return (branch_value if isinstance(branch_value, list) else [branch_value]) + added
    tail = PStr(new.text[len(old.text):], new.offs[len(old.text):]) if isinstance(old, PStr) else new
    return (branch_value if isinstance(branch_value, PStr) else PStr(" ".join(p.text for p in branch_value))) + tail

_State = State  # the name readers used before the split

__all__ = ["ShellReader", "Launch", "PStr", "State", "image_entrypoint"]

# Commands after which the processes a script started may have stopped (bash manual: wait; procps: kill, pkill).
_STOPPERS = frozenset({"kill", "pkill", "killall", "wait"})
_LEADERS = ("then", "do", "else", "{", "!")  # words before a command that are no part of it
_KEYWORDS = frozenset({"fi", "esac", "done", "}", "if", "elif", "case", *_LEADERS})  # first words simple() acts on
# Programs that are none of the names `_command` and `launch` act on (a builtin the reader interprets, a wrapper,
# shell or ssh, a container tool or launcher, a serving program, a script path): such a command starts nothing and
# sets nothing, whatever its arguments hold, unless an argument names docker/podman/nerdctl (`_docker` looks for
# them in every word) or an expansion assigns (`${X:=v}`); see `_inert_args`. A function of that name is called.
_INERT = frozenset({"curl", "wget", "sleep", "mkdir", "rm", "cp", "mv", "touch", "chmod", "ln", "cd", "ls", "cat", "grep", "head",
                    "tail", "true", "false", ":", "test", "[", "[[", "nvidia-smi", "pip", "rmdir", "sync", "date", "hostname"})


class ShellReader(Flow, Expander, Launcher, Output):
    def __init__(self, file_text: str, base_env: dict[str, Arg] | None = None, passthrough: frozenset[str] = frozenset()):
        self.file_text = file_text
        self.passthrough = passthrough  # wrapper scripts known to run their arguments unchanged (readers/wrappers.py)
        self.starts = [0] + [m.end() for m in re.finditer("\n", file_text)]
        self.base_env = base_env or {}

    def simple(self, cmd: LexCommand, st: State) -> None:
        st.joined_by, st.prev_end = st.prev_end, cmd.end
        words = cmd.words  # never changed in place: `words[1:]` below makes a new list
        if cmd.comments:
            st.recent.extend(c for c in cmd.comments if c)
        frame = st.frames[-1] if st.frames else None
        if frame is not None and frame.kind == "case" and frame.expect:
            if words or cmd.end in ("|", ")"):
                if words and cmd.head == "esac":
                    self.close(st.frames.pop(), st)
                    return
                self._pattern(words, cmd.end, frame, st)
            return
        if not words:
            return
        head = cmd.head
        if head in _KEYWORDS:  # most commands start with none of them: one test
            if head in ("fi", "esac", "done", "}"):
                if head in ("fi", "esac") and st.frames and st.frames[-1].kind in ("if", "case"):
                    self.close(st.frames.pop(), st)
                return
            if head in _LEADERS:
                while words and _plain(words[0]) in _LEADERS:
                    if _plain(words[0]) == "else" and st.frames and st.frames[-1].kind == "if":
                        self._else(st.frames[-1], st)
                    words = words[1:]
                if not words:
                    return
                head = _plain(words[0])
            if head in ("if", "elif"):
                if head == "if" or (st.frames and st.frames[-1].kind == "if"):
                    self._if_open(head, words, cmd.end, cmd.start, st)
                return
            if head == "case":
                self._case_open(cmd, words, st)
                return
        if not self.branch_taken(st):
            return
        if len(words) == 1 and len(words[0]) == 1 and words[0][0].kind == "arith":
            self.arith_command(words[0][0].text, st)
            return
        assigns: dict[str, PStr] = {}
        k = 0
        # VAR=value words before the command are its environment (or plain assignments when nothing follows)
        pending = []
        w0 = words[0][0] if words[0] else None
        while (w0 is not None and w0.kind == "lit" and "=" in w0.text  # no assignment without these: most commands
               and k < len(words) and self._assignment(words[k]) is not None):
            forks = self.forks_of([words[k]], st)
            old = st.vars.get(self._assignment(words[k]))
            name, value = self._assign_value(words[k], st)
            assigns[name] = value if isinstance(value, PStr) else (value[0] if value else PStr())
            pending.append((name, value, words[k], forks, old))
            k += 1
        if k == len(words):
            for name, value, word, forks, old in pending:
                self._set(name, value, word, forks, st, old=old)
            return
        forks = self.forks_of(words[k:], st)
        if forks:
            # a variable set differently in the branches of an if/case: the command is read once per branch
            self.with_forks(forks, st, lambda: self._command(words, k, assigns, cmd, st))
        else:
            self._command(words, k, assigns, cmd, st)

    def _set(self, name: str, value: PStr, word, forks, st: State, local: bool = False, old=None) -> None:
        fork = st.forks.get(name)
        if fork is not None and _APPEND.match(word[0].text):
            # `ARGS+=(...)` after a case that set ARGS per branch: each branch's value is extended, and stays per branch
            for _, vals, _ in fork.branches:
                if name in vals:
                    vals[name] = _appended(vals[name], old, value)
            self.record(name, value, st, local)
            st.vars[name] = value
            st.forks[name] = fork
            return
        self.record(name, value, st, local)
        st.vars[name] = value
        if forks and not any(f.kind in ("if", "case") for f in st.frames):
            self.assign_forked(name, word, forks, st)

    def _command(self, words, k: int, assigns: dict[str, PStr], cmd: LexCommand, st: State) -> None:
        if st.capture is not None and self.captured(words, k, cmd, st):
            return  # a function run for its output (`$(f ...)`): what it prints, nothing else
        w0 = words[k]
        if (len(w0) == 1 and w0[0].kind == "lit" and w0[0].text in _INERT and w0[0].text not in st.funcs
                and w0[0].text not in self.passthrough and _inert_args(words, k + 1)):
            return  # `sleep 1`, `curl http://...:$((PORT + n))/health`: what the steps below come to, without expanding it
        expanded: list[PStr] = []
        for w in words[k:]:
            if len(w) == 1 and w[0].kind == "lit":  # what expand() gives a plain word, without a list for it
                expanded.append(PStr(w[0].text, w[0].offs))
            else:
                expanded.extend(self.expand(w, st))
        if not expanded:
            return
        name = expanded[0].text
        if name in ("export", "local", "declare", "readonly", "typeset"):
            for w in words[k + 1 :]:
                if self._assignment(w) is not None:
                    forks = self.forks_of([w], st)
                    old = st.vars.get(self._assignment(w))
                    var, value = self._assign_value(w, st)
                    self._set(var, value, w, forks, st, local=name in ("local", "declare", "typeset") and len(st.positional) > 1, old=old)
                    if name == "export":
                        st.exported[var] = None
                elif name == "export" and _plain(w):
                    st.exported[_plain(w) or ""] = None
            return
        if name == "unset":  # `unset [-v] NAME...`: the variables (not functions, `-f`) are gone from here on
            if not any(p.text == "-f" for p in expanded[1:]):
                for p in expanded[1:]:
                    if not p.text.startswith("-"):
                        st.vars.pop(p.text, None)
                        st.exported.pop(p.text, None)
                        st.forks.pop(p.text, None)
            return
        if name in ("echo", "printf"):
            st.recent.append(" ".join(p.text for p in expanded[1:]))
            return
        if name == "exit":
            if st.joined_by not in ("||", "&&", "|") and not st.child and st.container is None:
                self.exits(st)  # an unconditional `exit` of the script itself, not `cmd || exit 1` or a child shell's
            return
        if (name in _STOPPERS and not _probes(name, expanded)) or (name == "xargs" and any(p.text in _STOPPERS for p in expanded[1:])) \
                or (name == "fuser" and any(p.text.startswith("-k") for p in expanded[1:])):
            st.epoch += 1  # what started before may be gone: a server started after it is no neighbour of one started before
            return
        if name == "eval":
            self.eval_words(expanded[1:], assigns, st)
            return
        if name in st.funcs:
            st.called.add(name)
            self.call(name, expanded[1:], st)
            return
        if self.container_script(expanded, st):
            return
        inner = shell_string(expanded)
        if inner is not None:
            self.subshell(inner, assigns, st)
            return
        self.launch(expanded, assigns, cmd, words, st)


def _probes(name: str, expanded: list[PStr]) -> bool:
    """`kill -0 PID` / `kill -s 0 PID` sends no signal: it only asks whether the process is there (kill(2): "If sig is
    0, then no signal is sent, but existence and permission checks are still performed"), so nothing stops."""
    words = [p.text for p in expanded[1:3]]
    return name in ("kill", "pkill") and (words[:1] == ["-0"] or words == ["-s", "0"] or words[:1] == ["--signal=0"])


def _inert_args(words, k: int) -> bool:
    """The words from k on are literal text and `$((...))` only (no expansion with an effect or a value that could
    be a program) and name no container tool: a command of an `_INERT` program with them starts nothing."""
    raw = []
    for w in words[k:]:
        for seg in w:
            if seg.kind == "lit" or (seg.kind == "sub" and seg.text.startswith("$((") and seg.text.endswith("))")):
                raw.append(seg.text)
            else:
                return False
        raw.append(" ")
    # the pieces of a word side by side (`dock"er"` is docker); an arithmetic value (digits, or the expression as
    # written) spells no tool's name
    text = "".join(raw)
    return "docker" not in text and "podman" not in text and "nerdctl" not in text
