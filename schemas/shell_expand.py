"""Shell expansion for the launch-script reader: positioned text (`PStr`), the interpreter's state, and how a word
becomes text: variables (`${VAR:-default}`, arrays, positional parameters), arithmetic (`$((TP*PP))`, evaluated when
every operand is known, else left as its `$` text, which the engine readers treat as unknown) and word splitting.
"""

from __future__ import annotations

import ast
import bisect
import functools
import itertools
import operator
import re
from typing import Any

from .cmdline import Arg
from .shell_words import Seg, Word
from .source import Span

_ASSIGN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(\+?)=")
_FIELD = re.compile(r"[^ \t\n]+")  # a word after field splitting
_FIELD_SUBS = re.compile(r"(?:\$\((?:[^()]|\([^()]*\))*\)|[^ \t\n])+")
_INT = re.compile(r"-?\d+")
_EXPR = re.compile(r"[\w\s+\-*/%()]+")
_ARITH_NAME = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*|\d)|\b([A-Za-z_][A-Za-z0-9_]*)\b")


# Arg(text, span, chars) made without the NamedTuple's Python-level __new__ (the same tuple, a third of the time):
# two per word of every command that may serve
_new = tuple.__new__


class PStr:
    """Text with the source offset of each character (-1: made up by expansion, no source); a range where the
    characters are side by side in the file (never changed in place: the lexer's pieces share it)."""

    __slots__ = ("text", "offs")

    def __init__(self, text: str = "", offs: list[int] | None = None):
        self.text = text
        self.offs = offs if offs is not None else [-1] * len(text)

    def __add__(self, other: "PStr") -> "PStr":
        return PStr(self.text + other.text, [*self.offs, *other.offs])  # either may be a range of the file

    def split(self) -> list["PStr"]:
        out = []
        # a command substitution left as written (its output unknown) stays one word: `$(git rev-parse --show-toplevel)/x`
        for m in (_FIELD_SUBS if "$(" in self.text else _FIELD).finditer(self.text):
            out.append(PStr(m.group(), self.offs[m.start() : m.end()]))
        return out


def concat(parts: list[PStr], sep: str = "") -> PStr:
    """Parts joined in one pass (adding PStrs one by one copies the offsets each time)."""
    offs: list[int] = []
    if sep:
        gap = [-1] * len(sep)
        for j, p in enumerate(parts):
            if j:
                offs += gap
            offs += p.offs
    else:
        for p in parts:
            offs += p.offs
    return PStr(sep.join([p.text for p in parts]), offs)


class State:
    """What the interpreter knows while it runs a script."""

    def __init__(self) -> None:
        self.vars: dict[str, PStr | list[PStr]] = {}
        self.exported: dict[str, None] = {}  # ordered set
        self.env_args: dict[str, tuple[PStr, Arg]] = {}  # exported variable -> (its value, positioned)
        self.funcs: dict[str, list] = {}
        self.called: set[str] = set()
        self.frames: list = []  # shell_flow.Frame, innermost last
        self.positional: list[list[PStr]] = [[]]
        self.recent: list[str] = []  # comments and echo text since the last launch
        self.pipe: list[str] = []  # tee targets of the pipeline being run
        self.forks: dict[str, Any] = {}  # variable -> shell_flow.Fork: set differently in the branches of an if/case
        self.extra: list[tuple] = []  # branches of the forks the current command is read with
        self.launches: list = []
        self.scripts_run: list[tuple[str, int]] = []  # shell scripts the script runs (their name, the offset of the command)
        self.remote: str | None = None  # the host of `ssh HOST CMD` while CMD is read
        self.containers: dict[str, tuple[str | None, str | None]] = {}  # `docker run --name X`: X -> (network, image)
        self.container: tuple | None = None  # (network, name, image) of the container whose `sh -c` script is being read
        self.epoch = 0  # how many times the script stopped what it had started (kill, pkill, wait...) before this point
        self.prev_end = "\n"  # the operator that ended the last command read
        self.joined_by = "\n"  # the one before the command being read (`||`: it runs only when the one before fails)
        self.child = 0  # > 0 while the text of a child shell (`bash -c`, ssh) is read: its `exit` ends only the child
        self.steps = 0
        self.max_steps = 0
        self.depth = 0
        self.capture: list | None = None  # what a function prints while it runs for `$(f ...)` (shell_output.py)
        self.scopes: list[tuple] = []  # subshells being read (`( ... )`, a list run with `&`): the variables to restore

    def scope(self) -> tuple:
        """What a subshell must not change in its parent (bash runs `( )`, a list run with `&` and `$( )` in one):
        restored by `restore` when the subshell ends."""
        return dict(self.vars), dict(self.exported), dict(self.forks)

    def restore(self, saved: tuple) -> None:
        self.vars, self.exported, self.forks = saved


class Expander:
    """Expansion and positions (mixed into ShellReader)."""

    file_text: str
    starts: list[int]

    def line_col(self, off: int) -> tuple[int, int]:
        i = bisect.bisect_right(self.starts, off) - 1
        return i + 1, off - self.starts[i] + 1

    def arg(self, p: PStr, fallback: int) -> Arg:
        offs = p.offs
        if offs:
            first, last = offs[0], offs[-1]
            if first < 0:
                first = next((o for o in offs if o >= 0), -1)
            if last < 0:
                last = next((o for o in reversed(offs) if o >= 0), -1)
        else:
            first = last = -1
        known = first >= 0
        starts = self.starts  # line_col, inlined: it is asked for every word of every command that may serve
        a, b = (first, last) if known else (fallback, fallback)
        i = bisect.bisect_right(starts, a) - 1
        line, col = i + 1, a - starts[i] + 1
        if b >= a and (i + 1 >= len(starts) or starts[i + 1] > b):
            eline, ecol = line, b - starts[i] + 1  # it ends on the line it starts on (most words): no second search
        else:
            i = bisect.bisect_right(starts, b) - 1
            eline, ecol = i + 1, b - starts[i] + 1
        # Positions inside a word matter only where a part of it is reported: VAR=value, --flag=value, JSON.
        chars: tuple = ()
        if known and ("=" in p.text or "{" in p.text):
            n = len(offs)
            if line == eline and last - first == n - 1 and (type(offs) is range or offs == list(range(first, first + n))):
                # characters written side by side on one line (most words): the columns follow one another
                return _new(Arg, (p.text, _new(Span, (line, col, eline, ecol + 1)), tuple(zip(itertools.repeat(line, n), range(col, col + n)))))
            out, prev, pl, pc, text = [], -2, line, col, self.file_text
            for o in offs:
                if o < 0:
                    out.append((line, col))
                    continue
                if o == prev + 1 and text[prev] != "\n":
                    pc += 1  # the next character on the same line: no search
                else:
                    pl, pc = self.line_col(o)
                out.append((pl, pc))
                prev = o
            chars = tuple(out)
        return _new(Arg, (p.text, _new(Span, (line, col, eline, ecol + 1)), chars))

    @staticmethod
    def _assignment(word: Word) -> str | None:
        if not word or word[0].kind != "lit" or word[0].quoted:
            return None
        m = _ASSIGN.match(word[0].text)
        return m.group(1) if m else None

    def _assign_value(self, word: Word, st: State) -> tuple[str, PStr | list[PStr]]:
        m = _ASSIGN.match(word[0].text)
        name, plus = m.group(1), m.group(2)
        if len(word) == 1:
            # NAME=text with nothing to expand (TP=2): what join() gives the text after `=` (no piece made for it)
            e = m.end()
            value = PStr(word[0].text[e:], word[0].offs[e:]) if e < len(word[0].text) else PStr("", [])
            if plus:
                old = st.vars.get(name)
                value = (old if isinstance(old, PStr) else PStr()) + value
            return name, value
        head = Seg("lit", word[0].text[m.end() :], word[0].offs[m.end() :], word[0].quoted)
        rest = ([head] if head.text else []) + word[1:]
        if rest and rest[0].kind == "array":
            # NAME=(a b c) and NAME+=(d): the array itself is the value (`"${NAME[@]}"` expands to its items)
            items = [p for item in rest[0].items or [] for p in self.expand(item, st)]
            old = st.vars.get(name) if plus else None
            items = (old if isinstance(old, list) else [old] if isinstance(old, PStr) else []) + items
            st.vars[name] = items
            return name, items
        value = self.join(rest, st)
        if plus:
            old = st.vars.get(name)
            value = (old if isinstance(old, PStr) else PStr()) + value
        return name, value

    def join(self, segs: list[Seg], st: State) -> PStr:
        """A word expanded without field splitting (assignment values, quoted text)."""
        if len(segs) == 1 and segs[0].kind == "lit":
            return PStr(segs[0].text, segs[0].offs)
        parts: list[PStr] = []
        for s in segs:
            got = self.seg(s, st)
            parts.append(got[0] if len(got) == 1 else concat(got, " "))
        return parts[0] if len(parts) == 1 else concat(parts)

    def expand(self, word: Word, st: State) -> list[PStr]:
        """A word after expansion: unquoted expansions split into several words."""
        if len(word) == 1:
            s = word[0]
            if s.kind == "lit":
                return [PStr(s.text, s.offs)]
            if s.quoted or s.kind != "var":
                parts = self.seg(s, st)
                if len(parts) == 1:  # `"$X"`, `$((...))`: the one piece, as the loop below gives it
                    return [parts[0]]
                return self._expand(word, st, parts)
        return self._expand(word, st, None)

    def _expand(self, word: Word, st: State, first: list[PStr] | None) -> list[PStr]:
        """expand() of a word of several pieces (`first`: the first piece's expansion, when already made)."""
        words: list[PStr] = []
        cur: list[PStr] | None = None
        for k, s in enumerate(word):
            parts = first if k == 0 and first is not None else self.seg(s, st)
            if s.kind == "var" and not s.quoted:
                pieces: list[PStr] = []
                for p in parts:
                    pieces.extend(p.split() if "$" not in p.text or p.text.count(" ") else [p])
                if not pieces:
                    continue
            else:
                pieces = parts
            for j, p in enumerate(pieces):
                if j:
                    words.append(concat(cur) if cur is not None else PStr())
                    cur = [p]
                elif cur is None:
                    cur = [p]
                else:
                    cur.append(p)
        if cur is not None:
            words.append(cur[0] if len(cur) == 1 else concat(cur))
        return words

    def seg(self, s: Seg, st: State) -> list[PStr]:
        kind = s.kind
        if kind == "lit":
            return [PStr(s.text, s.offs)]
        if kind == "var" and not s.op:
            # `$X` / `${X}`, the most common expansion: what the end of this method gives it, without its tests
            name = s.text
            value = st.vars.get(name) if not (name.isdigit() or name in ("@", "*")) else self.lookup(name, st)
            if isinstance(value, list):
                if name == "@" and value:
                    return list(value)  # "$@": each positional parameter a word of its own (bash(1), Special Parameters)
                value = (concat(value, " ") if name == "*" else value[0]) if value else PStr()
            return [value if value is not None else _unresolved(s)]
        if s.kind == "array":
            return [p for item in s.items or [] for p in self.expand(item, st)]
        if s.kind == "sub":
            raw_off = list(range(s.offs[0], s.offs[1])) if len(s.offs) == 2 else []
            if s.text.startswith("$((") and s.text.endswith("))"):
                value = self.arith(s.text[3:-2], st)
                if value is not None:
                    text = str(value)
                    offs = [-1] * len(text)
                    if raw_off:  # the value spans the expression that made it
                        offs[-1] = raw_off[-1]
                        offs[0] = raw_off[0]
                    return [PStr(text, offs)]
            if s.quoted and st.funcs and s.text.startswith("$("):
                printed = self.function_output(s, st)  # `"$(f ARGS)"` of a function that prints a config (shell_output.py)
                if printed is not None:
                    return [printed]
            counted = self._seq(s.text, st) if s.text.startswith("$(") else None
            if counted is not None:
                return counted
            return [PStr(s.text, raw_off[: len(s.text)] + [-1] * max(0, len(s.text) - len(raw_off)))]
        if s.kind == "arith":
            return [PStr(f"(({s.text}))")]
        name, op = s.text, s.op
        value = self.lookup(name, st)
        if op.startswith("[") and isinstance(value, list):
            return value if op in ("[@]", "[*]") else value[:1]
        if isinstance(value, list):
            value = value[0] if value else PStr()
        if op == "#":
            return [_unresolved(s)]
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
            return [value] if value is not None else [_unresolved(s)]
        if op:  # ${X%pat}, ${X/a/b}, ...: not worth interpreting
            return [_unresolved(s)]
        return [value if value is not None else _unresolved(s)]

    def lookup(self, name: str, st: State) -> PStr | list[PStr] | None:
        if name.isdigit():
            args = st.positional[-1]
            k = int(name)
            return args[k - 1] if 0 < k <= len(args) else None
        if name in ("@", "*"):
            return list(st.positional[-1]) or None
        return st.vars.get(name)

    def _seq(self, text: str, st: State) -> list[PStr] | None:
        """`$(seq LAST)`, `$(seq FIRST LAST)`, `$(seq FIRST STEP LAST)` (coreutils seq(1)) whose operands are numbers,
        variables holding numbers or `$((...))`: the numbers it prints, one word each; None otherwise."""
        m = _SEQ.fullmatch(text)
        if m is None:
            return None
        values = []
        for tok in _SEQ_TOKEN.findall(m.group(1)):
            if tok.startswith("$(("):
                v = self.arith(tok[3:-2], st)
            elif tok.startswith("$"):
                v = self.arith(tok.strip("${}"), st)
            else:
                v = int(tok)
            if v is None:
                return None
            values.append(v)
        if not 1 <= len(values) <= 3 or "".join(_SEQ_TOKEN.findall(m.group(1))) != re.sub(r"\s+", "", m.group(1)):
            return None
        first, step, last = (1, 1, values[0]) if len(values) == 1 else (values[0], 1, values[1]) if len(values) == 2 else values
        if step == 0 or abs(last - first) // abs(step) > 256:
            return None
        return [PStr(str(n)) for n in range(first, last + (1 if step > 0 else -1), step)]

    def arith(self, expr: str, st: State) -> int | None:
        """The value of a shell arithmetic expression when every variable in it holds a number, else None."""

        def value(name: str) -> str:
            v = self.lookup(name, st)
            if isinstance(v, list):
                v = v[0] if v else None
            text = v.text.strip() if v is not None else ""
            if _INT.fullmatch(text):
                return f"({text})"
            if v is not None and text and text != name and _EXPR.fullmatch(text) and st.depth < 8:
                st.depth += 1  # X=$((Y+1)) stored unevaluated, or a variable that holds an expression
                inner = self.arith(text, st)
                st.depth -= 1
                if inner is not None:
                    return f"({inner})"
            raise LookupError(name)

        # the names of an expression found once (loops and functions ask the same few again): what sub() with a
        # callback gave, without a scan and a match object per name
        parts = _arith_parts(expr)
        out = [parts[0]]
        try:
            for k in range(1, len(parts), 4):
                out.append(value(parts[k] or parts[k + 1] or parts[k + 2]))
                out.append(parts[k + 3])
            return _evaluate("".join(out).strip() or "0")
        except LookupError:
            return None


@functools.lru_cache(maxsize=4096)
def _arith_parts(expr: str) -> tuple:
    """re.split of an expression by _ARITH_NAME: text, then each name's three groups and the text after it."""
    return tuple(_ARITH_NAME.split(expr))


_SEQ = re.compile(r"\$\(\s*seq\s+(.*?)\s*\)", re.S)
_SEQ_TOKEN = re.compile(r"\$\(\([^()]*(?:\([^()]*\)[^()]*)*\)\)|\$\{?[A-Za-z_]\w*\}?|-?\d+")


def _unresolved(s: Seg) -> PStr:
    """A variable the reader cannot know, as `${NAME}`, over the characters of the expression that named it."""
    raw_off = list(range(s.offs[0], s.offs[1])) if len(s.offs) == 2 else []
    return PStr(f"${{{s.text}}}", (raw_off + [-1] * 64)[: len(s.text) + 3])


_OPS: dict[type, Any] = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Mod: operator.mod,
                         ast.Div: lambda a, b: int(a / b), ast.FloorDiv: lambda a, b: int(a / b), ast.Pow: operator.pow,
                         ast.LShift: operator.lshift, ast.RShift: operator.rshift, ast.BitAnd: operator.and_, ast.BitOr: operator.or_,
                         ast.BitXor: operator.xor}
_CMP: dict[type, Any] = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Eq: operator.eq,
                         ast.NotEq: operator.ne}


# `(8100) + (5)`, `2*3`: one operator between two decimal integers (no leading zero, which Python refuses), the
# shape of most launch-script arithmetic once its variables are replaced; read without Python's parser.
_BINARY = re.compile(r"(\(\s*)?(-?(?:0|[1-9][0-9]*))\s*(?(1)\))\s*([-+*])\s*(\(\s*)?(-?(?:0|[1-9][0-9]*))\s*(?(4)\))\s*")
_FAST = {"+": operator.add, "-": operator.sub, "*": operator.mul}


@functools.lru_cache(maxsize=4096)
def _evaluate(expr: str) -> int | None:
    """An expression of numbers only (the variables already replaced), or None when it is not shell arithmetic."""
    m = _BINARY.fullmatch(expr)
    if m is not None:
        return _FAST[m.group(3)](int(m.group(2)), int(m.group(5)))
    try:
        return _eval(ast.parse(expr, mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, TypeError, RecursionError, OverflowError, MemoryError):
        return None


def _eval(node: ast.AST) -> int:
    """Integer arithmetic as the shell does it (division truncates toward zero); anything else is refused."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _eval(node.operand)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        a, b = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and (b < 0 or b > 64):
            raise ValueError("exponent")
        return _OPS[type(node.op)](a, b)
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMP:
        return int(_CMP[type(node.ops[0])](_eval(node.left), _eval(node.comparators[0])))
    raise ValueError("not arithmetic")
