"""Branches of the launch-script reader: which `if`/`case` branch each process runs in, and which processes can run
in the same invocation.

Branches are alternatives: a process started in one branch of an `if`/`case` is tagged with that branch (the frame,
the variable that selects it and the values that select it), and so is a process started after the `if`/`case` with a
variable that its branches set differently (it is read once per branch). Pairing (`schemas/pairing.py`) pairs only
processes that can run in one invocation, with one exception that makes a script a deployment: when the values that
select the branches name prefill/decode roles, or the selector is a host rank (`NODE_RANK`, `$HOSTNAME`, ...), the
script is run once per role or host, so its branches are the processes of one deployment ("per process"). Any other
selection (`case "$CONFIG"` over model profiles, `if [ -f ... ]`) is exclusive.
"""

from __future__ import annotations

import bisect
import fnmatch
import itertools
import re

from .shell_expand import PStr, State
from .shell_words import Command as LexCommand
from .shell_words import Word
from .shell_words import plain as _plain

MAX_FORKS = 16  # combinations of branch-dependent values one command is read with
# Selectors whose values are the hosts or ranks of one deployment: a script that branches on them runs once per host.
_RANK_VAR = re.compile(r"(^|_)(RANK|NODE_RANK|NODE_ID|NODE_INDEX|NODEID|PROCID|HOST_?NAME|HOST_INDEX|HOST_ID|WORKER_ID|WORKER_INDEX|"
                       r"JOB_COMPLETION_INDEX|LWS_WORKER_INDEX)$", re.I)
# Values that name the side a process serves: `case "$ROLE" in prefill) ... ;; decode) ...` (a whole value, so that a
# profile called `p0` is not read as "prefill").
_ROLE_VALUE = re.compile(r"(prefill|prefiller|decode|decoder|kv_producer|kv_consumer|producer|consumer|context|ctx|generation|gen|p|d)", re.I)
_COMPARE = {"=": "eq", "==": "eq", "-eq": "eq", "!=": "ne", "-ne": "ne"}


class Frame:
    __slots__ = ("kind", "hint", "branch", "assigned", "ident", "selector", "values", "seen", "expect", "per_process", "pre", "decided", "mixed",
                 "exits")

    def __init__(self, kind: str, ident: str = "", hint: str = "", selector: str | None = None):
        self.kind = kind  # if | case | func | loop
        self.ident = ident  # "case at line 12#3": unique per run of the frame
        self.hint = hint
        self.branch = 0
        self.assigned: dict[str, dict[int, tuple[PStr, str]]] = {}  # name -> branch -> (value, the branch's words)
        self.selector = selector  # the variable whose value selects the branch ($CONFIG, $1), when one does
        self.values: tuple[frozenset[str] | None, frozenset[str]] = (frozenset(), frozenset())  # this branch: (values, excluded)
        self.seen: list[frozenset[str] | None] = []  # values of each branch so far (None: not a test of the selector)
        self.expect = False  # case: the next words are a pattern
        self.per_process = False
        self.pre: dict[str, PStr | list[PStr] | None] = {}  # values before the frame of the variables its branches set
        self.decided: str | None = None  # case: the subject's known value (only the matching branch runs)
        self.mixed = False  # if: the branches test different things
        self.exits: set[int] = set()  # branches that end the script (`exit`)

    def element(self) -> tuple:
        return (self, self.branch, self.selector, self.values[0], self.values[1])

    def note_values(self, values: frozenset[str] | None, excluded: frozenset[str] = frozenset()) -> None:
        self.values = (values, excluded)
        self.seen.append(values)
        if any(_ROLE_VALUE.fullmatch(v) for v in values or ()):
            self.per_process = True
        if self.selector and _RANK_VAR.search(self.selector):
            self.per_process = True


class Fork:
    """A variable (or several) set differently in the branches of one if/case: commands after it are read per branch."""

    __slots__ = ("frame", "branches", "pre")

    def __init__(self, frame: Frame, branches: list[tuple[tuple, dict[str, PStr], str]], pre: dict):
        self.frame = frame
        self.branches = branches  # (branch element, {variable: value}, the branch's words)
        self.pre = pre


class Branches:
    """Branch bookkeeping (mixed into ShellReader through Flow)."""

    _frames_made = 0

    def _new_frame(self, kind: str, line_of: int, selector: str | None, hint: str = "") -> Frame:
        Branches._frames_made += 1
        line = self.line_col(line_of)[0] if line_of >= 0 else 0
        return Frame(kind, f"{kind} at line {line}#{Branches._frames_made}", hint, selector)

    @staticmethod
    def _in_pattern(st: State) -> bool:
        return bool(st.frames) and st.frames[-1].kind == "case" and st.frames[-1].expect

    def _selector(self, word: Word, st: State) -> str | None:
        """The variable a word is made of (`"$CONFIG"`, `${1}`), qualified by the call for function arguments."""
        vars_ = [s for s in word if s.kind == "var"]
        if len(vars_) != 1 or any(s.kind not in ("var", "lit") or (s.kind == "lit" and s.text.strip()) for s in word):
            return None
        name = vars_[0].text
        if name.isdigit() and len(st.positional) > 1:
            func = next((f for f in reversed(st.frames) if f.kind == "func"), None)
            return f"{func.hint.split(' ')[0]}:${name}@{id(st.positional[-1])}" if func else None
        return name

    def _case_open(self, cmd: LexCommand, words: list[Word], st: State) -> None:
        subject = words[1] if len(words) > 1 else []
        frame = self._new_frame("case", cmd.start, self._selector(subject, st))
        frame.expect = True
        value = self.expand(subject, st) if subject else []
        if len(value) == 1 and "$" not in value[0].text and any(s.kind == "var" and s.text.isdigit() for s in subject) and len(st.positional) > 1:
            frame.decided = value[0].text  # a function's argument passed literally: the shell takes that branch only
        st.frames.append(frame)
        rest = words[3:] if len(words) > 2 and _plain(words[2]) == "in" else []
        if rest:  # `case "$1" in prefill)` on one line
            self._pattern(rest, cmd.end, frame, st)

    def _pattern(self, words: list[Word], end: str, frame: Frame, st: State) -> None:
        """Words of a case pattern; `a|b)` arrives as two commands, the first ending with `|`."""
        texts = [(_plain(w) or "").strip("\"'") for w in words if _plain(w) not in ("(",)]
        pending = getattr(frame, "hint", "") if frame.expect == "more" else ""
        frame.hint = (pending + "|" if pending else "") + " ".join(texts)
        if end == "|":
            frame.expect = "more"
            return
        frame.expect = False
        pats = frozenset(p for p in frame.hint.split("|") if p)
        if frame.seen or frame.branch:
            frame.branch += 1
        if "*" in pats:
            listed = frozenset(v for s in frame.seen if s for v in s)
            frame.note_values(None, listed)
        else:
            frame.note_values(pats)
        st.recent.clear()

    def _if_open(self, head: str, words: list[Word], end: str, line_of: int, st: State) -> None:
        text = " ".join(p.text for w in words[1:] for p in self.expand(w, st))
        selector, values, excluded = self._test(words[1:], end, st)
        if head == "if":
            frame = self._new_frame("if", line_of, selector, text)
            st.frames.append(frame)
        else:
            frame = st.frames[-1]
            frame.hint = text
            frame.branch += 1
            if frame.selector != selector:
                frame.mixed = True
        if frame.mixed or selector is None:
            frame.mixed = True
            frame.note_values(frozenset({f"#{frame.branch}"}))
        elif values is None:
            frame.note_values(None, excluded)
        else:
            frame.note_values(values)
        st.recent.clear()

    def _else(self, frame: Frame, st: State) -> None:
        frame.hint = ""
        frame.branch += 1
        st.recent.clear()
        if frame.mixed or frame.selector is None or any(s is None for s in frame.seen):
            frame.mixed = True
            frame.note_values(frozenset({f"#{frame.branch}"}))
        else:
            frame.note_values(None, frozenset(v for s in frame.seen if s for v in s))

    def _test(self, words: list[Word], end: str, st: State) -> tuple[str | None, frozenset[str] | None, frozenset[str]]:
        """`[ "$X" = v ]`, `[[ $X == v ]]`, `test "$X" != v`: (selector, values, excluded); (None, ...) for anything else."""
        plain = [_plain(w) for w in words]
        if plain and plain[0] in ("[", "[[", "test"):
            inner = words[1:-1] if plain[0] != "test" else words[1:]
            if plain[0] != "test" and plain[-1] not in ("]", "]]"):
                return None, None, frozenset()
            if len(inner) == 3 and _plain(inner[1]) in _COMPARE and end != "||":
                for a, b in ((inner[0], inner[2]), (inner[2], inner[0])):
                    sel, lit = self._selector(a, st), _plain(b)
                    if sel is not None and lit is not None:
                        lit = lit.strip("\"'")
                        if _COMPARE[_plain(inner[1])] == "eq":
                            return sel, frozenset({lit}), frozenset()
                        return sel, None, frozenset({lit})
        return None, None, frozenset()

    def branch_taken(self, st: State) -> bool:
        """False inside a case branch that the shell would skip (a literal argument that does not match)."""
        for f in st.frames:
            if f.kind != "case" or f.decided is None:
                continue
            if f.values[0] is not None:
                if not any(fnmatch.fnmatchcase(f.decided, p) for p in f.values[0]):
                    return False
            elif any(fnmatch.fnmatchcase(f.decided, p) for p in f.values[1]):
                return False
        return True

    def path(self, st: State) -> list[tuple]:
        """The branches the current command runs in."""
        return [f.element() for f in st.frames if f.kind in ("if", "case") and f.decided is None] + list(st.extra)

    def record(self, name: str, value: PStr, st: State, local: bool = False) -> None:
        """Called before `name` is set: an assignment inside a branch is remembered per branch (a function's `local`
        variables only in the function's own branches). A value set later replaces any per-branch values."""
        st.forks.pop(name, None)
        frame = None
        for f in reversed(st.frames):
            if f.kind in ("if", "case"):
                frame = f
                break
            if f.kind == "func" and local:
                break
        if frame is not None and frame.decided is None:
            if name not in frame.pre:
                frame.pre[name] = st.vars.get(name)
            frame.assigned.setdefault(name, {})[frame.branch] = (value, " ".join([frame.hint] + st.recent))

    def exits(self, st: State) -> None:
        """An `exit` in a branch of an if/case: the script ends there when that branch is taken."""
        frame = next((f for f in reversed(st.frames) if f.kind in ("if", "case")), None)
        if frame is not None and frame.decided is None:
            frame.exits.add(frame.branch)

    def _after_exits(self, frame: Frame, st: State) -> None:
        """Every branch of an `if` without `else` ends the script (`if [ host = A ]; then serve ...; exit; fi`) and one
        of them starts a process: what follows runs only in the runs that took none of them. Such branches pick what one run of the script does (per
        host or role), so they are per-process branches, and what follows is a branch of its own (index -1) of the
        same frame: one deployment with them, never in the same run."""
        if frame.kind != "if" or not frame.exits or frame.exits != set(range(frame.branch + 1)):
            return  # a branch that does not exit runs on into what follows
        if not any(el[0] is frame for launch in st.launches for el in (launch.alternative or ())):
            return  # a guard that starts nothing (`if [ busy ]; then die "..."; fi`): what follows is the script's own path
        frame.per_process = True
        excluded = frozenset(v for seen in frame.seen if seen for v in seen)
        st.extra.append((frame, -1, frame.selector, None, excluded))

    def close(self, frame: Frame, st: State) -> None:
        """Variables set differently in two or more branches fork the commands that use them afterwards."""
        self._after_exits(frame, st)
        varying = {n: b for n, b in frame.assigned.items() if len(b) >= 2 and (len({_text(v) for v, _ in b.values()}) >= 2
                                                                               or self._written_apart(b))}
        # a value written alike in each branch but read at run time from what differs (`KV=$(cat "$FILE")` where each
        # branch names its own FILE) differs too
        grew = bool(varying)
        while grew:
            grew = False
            for n, b in frame.assigned.items():
                if n not in varying and len(b) >= 2 and any(_runs_with(_text(v), varying) for v, _ in b.values()):
                    varying[n] = b
                    grew = True
        if not varying:
            return
        per_branch: dict[int, tuple[dict[str, PStr], str]] = {}
        for n, b in varying.items():
            for index, (value, hint) in b.items():
                per_branch.setdefault(index, ({}, hint))[0][n] = value
        branches = [((frame, index, frame.selector, *_branch_values(frame, index)), vals, hint)
                    for index, (vals, hint) in sorted(per_branch.items())]
        fork = Fork(frame, branches, {n: frame.pre.get(n) for n in varying})
        for n in varying:
            st.forks[n] = fork

    def _written_apart(self, values: dict) -> bool:
        """Values known only at run time that read alike (`${FILE}`) but are written differently in the branches
        (`FILE=${FILE:-/config/a.json}` and `FILE=${FILE:-/config/b.json}`: the defaults differ): the lines their text
        comes from differ."""
        texts = {_text(v) for v, _ in values.values()}
        if len(texts) != 1 or not any(c in next(iter(texts)) for c in "$`"):
            return False
        text, starts = self.file_text, self.starts
        written = set()
        for v, _ in values.values():
            offs = v.offs if isinstance(v, PStr) else [o for p in v for o in p.offs]
            lines = sorted({bisect.bisect_right(starts, o) for o in offs if o >= 0})
            written.add(tuple(text[starts[n - 1] : text.find("\n", starts[n - 1]) % (len(text) + 1)] for n in lines))
        return len(written) >= 2

    def forks_of(self, words: list[Word], st: State) -> list[Fork]:
        if not st.forks:
            return []
        out: list[Fork] = []
        for name in _var_names(words):
            f = st.forks.get(name)
            if f is not None and f not in out:
                out.append(f)
        return out

    def with_forks(self, forks: list[Fork], st: State, body) -> None:
        """Run `body()` once per combination of the forks' branches, with their values set and their branches tagged."""
        names = {n for f in forks for _, vals, _ in f.branches for n in vals} | {n for f in forks for n in f.pre}
        saved = {n: st.vars.get(n) for n in names}
        recent, extra = list(st.recent), list(st.extra)
        for combo in itertools.islice(itertools.product(*[f.branches for f in forks]), MAX_FORKS):
            hints = []
            for f, (_elem, vals, hint) in zip(forks, combo):
                for n in f.pre:
                    v = vals.get(n, f.pre[n])
                    if v is None:
                        st.vars.pop(n, None)
                    else:
                        st.vars[n] = v
                for n, v in vals.items():
                    st.vars[n] = v
                hints.append(hint)
            st.recent = recent + hints
            st.extra = extra + [elem for elem, _, _ in combo]
            body()
        for n, v in saved.items():
            if v is None:
                st.vars.pop(n, None)
            else:
                st.vars[n] = v
        st.recent, st.extra = [], extra

    def assign_forked(self, name: str, word: Word, forks: list[Fork], st: State) -> None:
        """`CMD="vllm serve --tp $TP"` after a case that sets TP per branch: CMD is set per branch too."""
        if len(forks) != 1:
            return
        fork = forks[0]
        names = {n for _, vals, _ in fork.branches for n in vals} | set(fork.pre)
        saved = {n: st.vars.get(n) for n in names | {name}}
        for _, vals, _ in fork.branches:
            for n in fork.pre:
                v = vals.get(n, fork.pre[n])
                if v is None:
                    st.vars.pop(n, None)
                else:
                    st.vars[n] = v
            _, value = self._assign_value(word, st)
            vals[name] = value
        fork.pre.setdefault(name, saved.get(name))
        for n, v in saved.items():
            if v is None:
                st.vars.pop(n, None)
            else:
                st.vars[n] = v
        st.forks[name] = fork


def _branch_values(frame: Frame, index: int) -> tuple[frozenset[str] | None, frozenset[str]]:
    if index < len(frame.seen):
        seen = frame.seen[index]
        if seen is None:
            return None, frozenset(v for s in frame.seen[:index] if s for v in s)
        return seen, frozenset()
    return frozenset({f"#{index}"}), frozenset()


def _runs_with(text: str, names) -> bool:
    """Whether a value left as written holds a command run at run time (`$(...)`, backticks) that reads one of `names`."""
    if "$(" not in text and "`" not in text:
        return False
    return any(re.search(r"\$\{?" + re.escape(n) + r"(?![A-Za-z0-9_])", text) for n in names)


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
            elif s.kind in ("sub", "arith"):
                out.extend(re.findall(r"[A-Za-z_]\w*", s.text))

    for w in words:
        walk(w)
    return out


def _text(value) -> str:
    """A variable's value as text: an array (`A=(x y)`) is its items joined."""
    return value.text if isinstance(value, PStr) else " ".join(p.text for p in value)
