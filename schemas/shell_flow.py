"""Control flow of the launch-script reader: commands, loops, functions and `eval`, in the order a shell runs them.

Functions run where they are called (with their arguments), loops run once per listed item (C-style `for ((...))`
loops once per value when the bound is known), and every branch of an `if`/`case` is taken, except a `case` on a
function's argument that the caller passed as a literal, which takes the branch the shell would take.

Which branch each process runs in, and which processes can run together: `shell_branch.py`.
"""

from __future__ import annotations

import re

from .cmdline import _WRAPPERS, SHELLS, shell_script_at
from .gcpause import paused_gc
from .shell_branch import Branches, Frame, _plain, _var_names  # noqa: F401 (re-exported)
from .shell_expand import PStr, State, concat
from .shell_lex import Lexer
from .shell_words import Command as LexCommand

MAX_STEPS = 20_000  # commands interpreted per script beyond its own length: a bound against pathological input
MAX_LOOP = 8  # iterations of one loop
_C_INIT = re.compile(r"\s*([A-Za-z_]\w*)\s*=\s*(.+?)\s*")  # the `i=0` of `for ((i=0; ...))`
_INT = re.compile(r"-?\d+")
_ARITH_ASSIGN = re.compile(r"\s*(\+\+|--)?\s*([A-Za-z_]\w*)\s*(\+\+|--|[-+*/%]?=(?!=))?\s*(.*?)\s*")  # `i++`, `X += 2`, `Y = X * 2`


class Flow(Branches):
    """Running commands (mixed into ShellReader, with Expander and Launcher)."""

    def read(self, text: str, offs: list[int] | None = None, positional: list[PStr] | None = None) -> list:
        """The processes the script starts; `positional`: its $1, $2, ... (`sh -c SCRIPT NAME ARGS...` gives ARGS)."""
        # The reader makes about a million small objects for a 1 MB script, none in a reference cycle; the cyclic
        # collector's passes over them made reading grow faster than the script (measured: 2x at 1 MB).
        with paused_gc():
            return self._read(text, offs, positional)

    def _read(self, text: str, offs: list[int] | None, positional: list[PStr] | None = None) -> list:
        st = State()
        if positional is not None:
            st.positional = [positional]
        for name, a in self.base_env.items():
            st.vars[name] = PStr(a.text)
            st.exported[name] = None
            # a container's own env (a Pod's env:, a compose environment:) keeps where it is written while the script
            # leaves it as it is: launch() reuses this Arg for as long as the variable holds this very value
            st.env_args[name] = (st.vars[name], a)
        cmds = Lexer(text, offs).commands()
        st.max_steps = MAX_STEPS + 4 * len(cmds)
        self.run(cmds, st)
        for name in list(st.funcs):  # functions never called still say what they would start
            if name not in st.called:
                st.called.add(name)
                self.call(name, [], st)
        self.scripts_run = st.scripts_run
        return [self.finish(launch) for launch in st.launches]

    def run(self, cmds: list[LexCommand], st: State) -> None:
        i = 0
        while i < len(cmds):
            st.steps += 1
            if st.steps > st.max_steps:
                return
            cmd = cmds[i]
            words = cmd.words
            # function definitions: name ( ) { ... }  /  function name { ... }
            if cmd.end == "(" and len(words) == 1 and i + 1 < len(cmds) and not cmds[i + 1].words and cmds[i + 1].end == ")":
                name = cmd.head
                body, i = _brace_body(cmds, i + 2)
                if name:
                    st.funcs[name] = body
                continue
            first = cmd.head if words else ""
            if first == "function" and len(words) >= 2:
                name = (_plain(words[1]) or "").rstrip("()")  # `function $(...)`: a name made at run time, not a function we can call
                body, i = _brace_body(cmds, i + 1 if len(words) == 2 else i)
                if name:
                    st.funcs[name] = body
                continue
            if first in ("for", "while", "until", "select"):
                body, nxt = _loop_body(cmds, i)
                self.loop(cmd, body, st)
                i = nxt
                continue
            if cmd.end == "(" and not words and not self._in_pattern(st):
                if len(st.scopes) < _MAX_SCOPES:
                    st.scopes.append((None, st.scope()))  # `( ... )`: a subshell, what it sets stays in it
                i += 1
                continue
            if st.prev_end in _LIST_START and not self._in_pattern(st) and len(st.scopes) < _MAX_SCOPES:
                last = _background_list_end(cmds, i)
                if last is not None:  # `export X=0 && serve | tee log &`, `start_prefill &`: run in a subshell too
                    st.scopes.append((last, st.scope()))
            if cmd.end == "|" and not self._in_pattern(st):  # `cmd | tee prefill.log`: the log file names the process
                j = i
                while j + 1 < len(cmds) and cmds[j].end == "|":
                    j += 1
                    ws = [self.join(w, st).text for w in cmds[j].words]
                    if ws and ws[0] == "tee":
                        st.pipe.extend(x for x in ws[1:] if not x.startswith("-"))
            self.simple(cmd, st)
            if st.scopes and ((cmd.end == ")" and st.scopes[-1][0] is None and not self._in_pattern(st)) or st.scopes[-1][0] == i):
                st.restore(st.scopes.pop()[1])
            if cmd.end != "|":
                st.pipe.clear()
            if cmd.end == ";;" and st.frames and st.frames[-1].kind == "case":
                st.frames[-1].expect = True
                st.frames[-1].hint = ""
            i += 1

    # --- loops and functions ------------------------------------------------------------------------------------

    def loop(self, head: LexCommand, body: list[LexCommand], st: State) -> None:
        words = head.words
        kw = _plain(words[0])
        if kw == "for" and len(words) > 1 and len(words[1]) == 1 and words[1][0].kind == "arith":
            self._c_loop(words[1][0].text, body, st)
            return
        items: list[PStr] = []
        if kw == "for" and len(words) >= 3 and _plain(words[2]) == "in":
            for w in words[3:]:
                items.extend(self.expand(w, st))
        var = (_plain(words[1]) or "") if kw == "for" and len(words) > 1 else ""
        st.frames.append(Frame("loop"))
        literal = [p for p in items if "$" not in p.text][:MAX_LOOP]
        for value in literal or [None]:
            if var:
                st.vars[var] = value if value is not None else PStr(f"${var}")
            self.run(body, st)
        st.frames.pop()

    def _c_loop(self, header: str, body: list[LexCommand], st: State) -> None:
        """`for ((i=0; i<N; i++))`: once per value while the condition is known, else once with `i` unknown."""
        parts = header.split(";")
        init, cond, step = (parts + ["", "", ""])[:3] if len(parts) == 3 else ("", "", "")
        m = _C_INIT.fullmatch(init)
        st.frames.append(Frame("loop"))
        ran = False
        if m:
            var = m.group(1)
            value = self.arith(m.group(2), st)
            for _ in range(MAX_LOOP):
                if value is None:
                    break
                st.vars[var] = PStr(str(value))
                if self.arith(cond, st) != 1:
                    break
                ran = True
                self.run(body, st)
                self.arith_command(step, st)
                got = self.lookup(var, st)
                value = int(got.text) if isinstance(got, PStr) and _INT.fullmatch(got.text) else None
        if not ran:
            if m:
                st.vars[m.group(1)] = PStr(f"${m.group(1)}")
            self.run(body, st)
        st.frames.pop()

    def arith_command(self, expr: str, st: State) -> None:
        """`((i++))`, `((PORT += 2))`, `((X = Y * 2))`: the assignment, when its value is known."""
        for part in expr.split(","):
            m = _ARITH_ASSIGN.fullmatch(part)
            if not m or not (m.group(1) or m.group(3)):
                continue
            name, op, rhs = m.group(2), m.group(1) or m.group(3), m.group(4)
            if op in ("++", "--"):
                value = self.arith(f"{name} {op[0]} 1", st)
            elif op == "=":
                value = self.arith(rhs, st)
            else:
                value = self.arith(f"{name} {op[0]} ({rhs})", st)
            st.vars[name] = PStr(str(value)) if value is not None else PStr(f"${name}")

    def call(self, name: str, args: list[PStr], st: State) -> None:
        if st.depth > 8:
            return
        st.depth += 1
        st.frames.append(Frame("func", hint=" ".join([name] + [a.text for a in args])))
        st.positional.append(args)
        self.run(st.funcs[name], st)
        st.positional.pop()
        st.frames.pop()
        st.depth -= 1

    def subshell(self, inner: tuple[list[PStr], str | None], assigns: dict[str, PStr], st: State) -> None:
        """Run the text of `bash -c` / `ssh HOST` as a child shell: only exported variables (none over ssh) reach it,
        and what it sets does not come back; what ssh starts runs on HOST."""
        words, remote = inner
        saved, saved_remote = st.vars, st.remote
        st.vars = {} if remote is not None else {n: saved[n] for n in st.exported if n in saved}
        st.remote = remote if remote is not None else st.remote
        st.child += 1
        try:
            self.eval_words(words, {} if remote is not None else assigns, st)
        finally:
            st.vars, st.remote = saved, saved_remote
            st.child -= 1

    def eval_words(self, expanded: list[PStr], assigns: dict[str, PStr], st: State) -> None:
        joined = concat(expanded, " ")
        if st.depth < 8:
            st.depth += 1
            for name, value in assigns.items():
                st.vars[name] = value
            self.run(Lexer(joined.text, joined.offs).commands(), st)
            st.depth -= 1


_MAX_SCOPES = 64  # subshells held open at once, at most (each keeps a copy of the variables to restore)
# the operators after which a new list starts (a command's `&&` / `||` / `|` continue one)
_LIST_START = frozenset({"\n", ";", "&", "(", ")", ";;"})


def _background_list_end(cmds: list[LexCommand], i: int) -> int | None:
    """The index of the last command of the list starting at `i` when the list is run in the background (ends in `&`):
    bash runs it in a subshell (bash manual, Lists of Commands), so what it sets does not reach what follows."""
    j = i
    while j < len(cmds) and cmds[j].end in ("&&", "||", "|"):
        j += 1
    return j if j < len(cmds) and cmds[j].end == "&" else None


_SHELLS_SSH = frozenset(SHELLS) | {"ssh"}
_BRACE_FIRST = frozenset({"{", "}", ""})
# ssh(1) options that take a value (OpenSSH ssh.1: -B -b -c -D -E -e -F -I -i -J -L -l -m -O -o -p -Q -R -S -W -w)
_SSH_VALUES = frozenset("-" + c for c in "BbcDEeFIiJLlmOopQRSWw")


def shell_string(expanded: list[PStr]) -> tuple[list[PStr], str | None] | None:
    """The command text another shell runs: `bash -c "CMD"` / `sh -lc 'CMD'` (after wrappers such as nohup, env A=B,
    srun, mpirun), and `ssh [options] HOST CMD...`, whose words the remote shell joins and reads; with whether the
    host the text runs on for ssh (no variable of this script reaches it there). None for any other command."""
    first = expanded[0].text.rsplit("/", 1)[-1] if expanded else ""
    if first not in _WRAPPERS and first not in SHELLS and first != "ssh":
        return None  # what the loop below answers for any other command, without splitting every word
    texts = [p.text for p in expanded]
    if first in _WRAPPERS and _SHELLS_SSH.isdisjoint([t.rsplit("/", 1)[-1] for t in texts]):
        return None  # a wrapper that runs no shell or ssh (`nohup vllm serve ...`): what the loop below answers
    for j, t in enumerate(texts):
        base = t.rsplit("/", 1)[-1]
        if j > 0 and texts[0].rsplit("/", 1)[-1] not in _WRAPPERS:
            return None
        if base in SHELLS:
            k = shell_script_at(texts, j)
            return ([expanded[k]], None) if k is not None else None
        if base == "ssh":
            k = j + 1
            while k < len(texts) and texts[k].startswith("-"):
                k += 2 if texts[k] in _SSH_VALUES else 1
            return (expanded[k + 1 :], texts[k].rpartition("@")[2]) if k + 1 < len(texts) else None
    return None


def _brace_body(cmds: list[LexCommand], i: int) -> tuple[list[LexCommand], int]:
    """Commands between `{` (at or after i) and its `}`; the index after it."""
    while i < len(cmds) and not (cmds[i].words and cmds[i].head == "{"):
        i += 1
    if i >= len(cmds):
        return [], i
    depth, body = 0, []
    first = cmds[i]
    for j in range(i, len(cmds)):
        c = cmds[j] if j > i else LexCommand(first.words[1:], first.end, first.comments, first.start)
        ws = c.words
        for w in ws:
            # only a word whose first piece is `{`, `}` or empty can be the word `{` or `}` (most words are not asked)
            if not w or w[0].text in _BRACE_FIRST:
                got = _plain(w)
                depth += 1 if got == "{" else -1 if got == "}" else 0
        if depth < 0 and ws and c.head == "}":
            return body, j + 1
        if depth < 0 and ws and _plain(ws[-1]) == "}":
            body.append(LexCommand(c.words[:-1], c.end, c.comments, c.start))
            return body, j + 1
        body.append(c)
    return body, len(cmds)


def _loop_body(cmds: list[LexCommand], i: int) -> tuple[list[LexCommand], int]:
    depth, body = 0, []
    for j in range(i + 1, len(cmds)):
        c = cmds[j]
        head = c.head
        if head in ("for", "while", "until", "select"):
            depth += 1
        if head == "done":
            if depth == 0:
                return body, j + 1
            depth -= 1
        body.append(c)
    return body, len(cmds)
