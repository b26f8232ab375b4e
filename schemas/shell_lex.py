"""Shell lexing for launch scripts: text into commands of words (`shell_words.py`), each character with the offset it
was written at, so that a value expanded from `PORT=8100` three functions away still points at `8100`.

Covers what deployment scripts use: quotes and escapes, `\\` continuations, comments, `$VAR`, `${VAR:-default}`,
`${ARR[@]}`, `$(...)`, `$((...))`, backticks, `NAME=(a b)` arrays, and the operators that end a command
(newline, `;`, `;;`, `&`, `&&`, `||`, `|`, parentheses) or redirect it.
"""

from __future__ import annotations

import re

from .shell_words import Command, Seg, Word

SEPARATORS = ("\n", ";", ";;", "&", "&&", "||", "|", "(", ")")
_PLAIN = re.compile(r"[^ \t\r\n;&|()<>\\'\"$`=]+")  # a run of characters that are only themselves, outside quotes
# possessive runs (Python 3.11): the same matches, without trying each shorter prefix when no delimiter follows
# and the blanks after it, which the loop would skip next (one step per word instead of two)
_SIMPLE_WORD = re.compile(r"((?:[^\s;&|()<>\\'\"$`=]++|=(?!\())++)(?=[\s;&|()<>]|\Z)[ \t\r]*+")
_BLANKS = re.compile(r"[ \t\r]+")
_OP_START = frozenset("&|;\n()")
_SPECIAL = frozenset(" \t\r\\#&|;\n()<>")  # first characters of a step other than a word (digits: `2>&1`)
_WORD_END = frozenset(" \t\r\n;&|()<>")
# ASCII characters that are neither a step's first character nor a digit: `c not in _SPECIAL and not c.isdigit()`
# for them, as one set test (any other character is not in _SPECIAL)
_WORD_START = frozenset(chr(x) for x in range(128) if chr(x) not in _SPECIAL and not chr(x).isdigit())
_PLAIN_DQ = re.compile(r'[^"\\$`]+')  # ... inside double quotes
_BRACE_RUN = re.compile(r"[^}\\'\"$`]+")  # ... inside ${X:-...}, where blanks and operators are text too
_NOTHING = re.compile(r"(?!)")
_WORD_CHARS = re.compile(r"\w*")  # what dollar() takes after `$N`: str.isalnum() or `_` (the same test in re)


class Lexer:
    def __init__(self, text: str, offs: list[int] | None = None):
        self.t = text
        # the source offset of each character: a range when the text is the file itself (no million-int list)
        self.o: list[int] | range = offs if offs is not None else range(len(text))
        self.i = 0
        self.n = len(text)

    def off(self, i: int) -> int:
        return self.o[i] if 0 <= i < len(self.o) else (self.o[-1] + 1 if self.o else 0)

    def commands(self) -> list[Command]:
        out: list[Command] = []
        words: list[Word] = []
        comments: list[str] = []
        start = 0
        t, n, o = self.t, self.n, self.o
        no = len(o)
        i = self.i  # the position, in a local between the steps that need self.i (word, dollar)
        while i < n:
            c = t[i]
            if not (c in _WORD_START or (c > "\x7f" and not c.isdigit())):
                # a blank, continuation, comment, `((`, operator or redirection may start here; a character of
                # _WORD_START starts only a word and goes straight to it, without asking each of these steps first
                if c == " " or c == "\t" or c == "\r":
                    i = _BLANKS.match(t, i).end()
                    continue
                if c == "\\" and i + 1 < n and t[i + 1] == "\n":
                    i += 2
                    continue
                if c == "#" and (i == 0 or t[i - 1] in " \t\n;&|()"):
                    j = t.find("\n", i)
                    j = n if j < 0 else j
                    comments.append(t[i + 1 : j].strip())
                    i = j
                    continue
                if c == "(" and t.startswith("((", i) and (not words or (len(words) == 1 and _lit_text(words[0]) == "for")):
                    # `((i++))` and `for ((i=0; i<N; i++))`: one arithmetic word, not two subshells
                    j = _match_paren(t, i)
                    if not words:
                        start = self.off(i)
                    words.append([Seg("arith", t[i + 2 : max(i + 2, j - 2)], [self.off(i), self.off(j)])])
                    i = j
                    continue
                if c in _OP_START:
                    op = "\n" if c == "\n" else _operator(t, i, n)  # a newline is one operator of its own
                    if op is not None:
                        i += len(op)
                        if i < n and t[i] in " \t\r":  # the indentation after a newline: skipped here, not in a step of its own
                            i = _BLANKS.match(t, i).end()
                        if words or op in ("(", ")", ";;"):
                            out.append(Command(words, op, comments, start))
                            words, comments = [], []
                        continue
                if c in "<>&" or (c.isdigit() and i + 1 < n and t[i + 1] in "<>"):
                    at = i
                    while i < n and (t[i] in "<>&" or t[i].isdigit()) and not (t[i] == "&" and i + 1 < n and t[i + 1] == "&"):
                        i += 1
                    # a redirection is one word ">" (what the readers look for); `op` keeps it as written (`2>&1`, `>&2`)
                    words.append([Seg("lit", ">", [self.off(at)], op=t[at:i])])
                    continue
            # a word
            if not words:
                start = o[i] if i < no else self.off(i)
            m = _SIMPLE_WORD.match(t, i)
            if m is not None:  # most words are plain text up to a blank or an operator: one piece, no loop
                j = m.end(1)
                # a range when the text is the file itself: no int object per character (a list is made only where
                # a piece is added to it, in _lits/_lit)
                words.append([Seg("lit", m.group(1), o[i:j] if j <= no else [self.off(k) for k in range(i, j)])])
                i = m.end()
                continue
            self.i = i
            w = self.word()
            if self.i == i:  # a character no rule takes: skip it rather than loop
                i += 1
                continue
            i = self.i
            words.append(w)
        self.i = i
        if words:
            out.append(Command(words, "\n", comments, start))
        return out

    def word(self, stop: str = "", in_brace: bool = False) -> Word:
        """One word, up to whitespace, an operator, or `stop` (inside ${...})."""
        segs: Word = []
        t, n = self.t, self.n
        i = self.i  # in a local; self.i around the steps that read on their own (quotes, $, arrays)
        while i < n:
            c = t[i]
            if stop and c in stop:
                break
            if not in_brace and c in _WORD_END:
                break
            if c == "\\" and i + 1 < n:
                if t[i + 1] == "\n":
                    i += 2
                    continue
                self._lit(segs, t[i + 1], i + 1, False)
                i += 2
            elif c == "'":
                j = t.find("'", i + 1)
                j = n if j < 0 else j
                self._lits(segs, i + 1, j, True)
                if j == i + 1:
                    segs.append(Seg("lit", "", [], True))  # '' is an empty word, not no word
                i = j + 1
            elif c == "$" and i + 1 < n and t[i + 1] == "'":
                j = t.find("'", i + 2)
                j = n if j < 0 else j
                self._lits(segs, i + 2, j, True)
                i = j + 1
            elif c == '"':
                self.i = i + 1
                self._double(segs)
                i = self.i
            elif c == "$" and i + 1 < n and (t[i + 1].isalpha() or t[i + 1] == "_"):
                j = _WORD_CHARS.match(t, i + 2).end()  # `$NAME`, as in _double
                o = self.o
                segs.append(Seg("var", t[i + 1 : j], [o[i] if i < len(o) else self.off(i), o[j] if j < len(o) else self.off(j)], False))
                i = j
            elif c == "$" or c == "`":
                self.i = i
                segs.append(self.dollar(quoted=False))
                i = self.i
            elif c == "=" and not in_brace and i + 1 < n and t[i + 1] == "(" and segs and _is_name_prefix(segs):
                self._lit(segs, "=", i, False)
                self.i = i + 2
                segs.append(self._array())
                i = self.i
            elif (m := (_PLAIN if not in_brace and (not stop or stop == ")") else _BRACE_RUN if in_brace and stop == "}" else _NOTHING).match(t, i)) is not None:
                # a run of characters the steps above leave to the one below, one at a time: as one piece
                j = m.end()
                self._lits(segs, i, j, False)
                i = j
            else:
                self._lit(segs, c, i, False)
                i += 1
        self.i = i
        return segs

    def _lits(self, segs: Word, i: int, j: int, quoted: bool) -> None:
        """Characters i..j of the text, all literal."""
        if i >= j:
            return
        offs = self.o[i:j] if j <= len(self.o) else [self.off(k) for k in range(i, j)]
        if segs and segs[-1].kind == "lit" and segs[-1].quoted == quoted:
            last = segs[-1]
            last.text += self.t[i:j]
            if type(last.offs) is not list:
                last.offs = list(last.offs)
            last.offs.extend(offs)
        else:
            segs.append(Seg("lit", self.t[i:j], offs, quoted))  # a slice: a range of the file, or a new list

    def _lit(self, segs: Word, ch: str, i: int, quoted: bool) -> None:
        o = self.o
        at = o[i] if 0 <= i < len(o) else self.off(i)
        if segs and segs[-1].kind == "lit" and segs[-1].quoted == quoted:
            last = segs[-1]
            last.text += ch
            if type(last.offs) is not list:
                last.offs = list(last.offs)
            last.offs.append(at)
        else:
            segs.append(Seg("lit", ch, [at], quoted))

    def _double(self, segs: Word) -> None:
        t, n, o = self.t, self.n, self.o
        no = len(o)
        i = self.i
        while i < n and t[i] != '"':
            c = t[i]
            if c == "\\" and i + 1 < n and t[i + 1] in '"\\$`\n':
                if t[i + 1] != "\n":
                    self._lit(segs, t[i + 1], i + 1, True)
                i += 2
            elif c == "$" and i + 1 < n and (t[i + 1].isalpha() or t[i + 1] == "_"):
                # `$NAME`, as dollar() reads it (\w is isalnum() or `_`), without the call
                j = _WORD_CHARS.match(t, i + 2).end()
                segs.append(Seg("var", t[i + 1 : j], [o[i] if i < no else self.off(i), o[j] if j < no else self.off(j)], True))
                i = j
            elif c == "$" or c == "`":
                self.i = i
                segs.append(self.dollar(quoted=True))
                i = self.i
            else:
                m = _PLAIN_DQ.match(t, i)
                j = m.end() if m else i + 1
                if segs and segs[-1].kind == "lit" and segs[-1].quoted:
                    self._lits(segs, i, j, True)
                else:  # what _lits makes of it, without the call
                    segs.append(Seg("lit", t[i:j], o[i:j] if j <= no else [self.off(k) for k in range(i, j)], True))
                i = j
        self.i = i + 1
        if not segs:
            segs.append(Seg("lit", "", [], True))  # "" is an empty word, not no word

    def dollar(self, quoted: bool) -> Seg:
        t, n, s = self.t, self.n, self.i
        off = self.off
        if t[s] == "`":
            j = t.find("`", s + 1)
            self.i = n if j < 0 else j + 1
            return Seg("sub", t[s : self.i], [off(s), off(self.i)], quoted)
        if s + 1 >= n:
            self.i += 1
            return Seg("lit", "$", [off(s)], quoted)
        c = t[s + 1]
        if c == "(":
            self.i = _match_paren(t, s + 1)
            return Seg("sub", t[s : self.i], [off(s), off(self.i)], quoted)
        if c == "{":
            i = s + 2
            op, name, arg = "", "", None
            if i < n and t[i] == "#":
                op, i = "#", i + 1
            j = i
            while j < n and (t[j].isalnum() or t[j] in "_@*#?!$-") and not (j > i and t[j] == "-"):
                j += 1
            name = t[i:j]
            i = j
            if i < n and t[i] == "[":
                k = t.find("]", i)
                k = n if k < 0 else k
                op = t[i : k + 1]
                i = k + 1
            if i < n and t[i] != "}":
                m = i
                while m < n and t[m] in ":-=+?#%/^,":
                    m += 1
                op += t[i:m]
                self.i = m
                arg = self.word(stop="}", in_brace=True)
                i = self.i
            if i < n and t[i] == "}":
                i += 1
            self.i = i
            return Seg("var", name, [off(s), off(i)], quoted, op, arg)
        if c.isalpha() or c == "_":
            j = s + 1
            while j < n and (t[j].isalnum() or t[j] == "_"):
                j += 1
            self.i = j
            return Seg("var", t[s + 1 : j], [off(s), off(j)], quoted)
        if c.isdigit() or c in "@*#?!$-":
            self.i = s + 2
            return Seg("var", c, [off(s), off(s + 2)], quoted)
        self.i += 1
        return Seg("lit", "$", [off(s)], quoted)

    def _array(self) -> Seg:
        items: list[Word] = []
        t, n = self.t, self.n
        start = self.i
        while self.i < n and t[self.i] != ")":
            if t[self.i] in " \t\r\n":
                self.i += 1
                continue
            if t[self.i] == "\\" and self.i + 1 < n and t[self.i + 1] == "\n":
                self.i += 2
                continue
            if t[self.i] == "#":
                j = t.find("\n", self.i)
                self.i = n if j < 0 else j
                continue
            before = self.i
            w = self.word(stop=")", in_brace=False)
            if w:
                items.append(w)
            if self.i == before:
                self.i += 1
        self.i += 1
        return Seg("array", "", [self.off(start), self.off(self.i)], False, items=items)


_TWO = frozenset(("&&", "||", ";;"))


def _operator(t: str, i: int, n: int) -> str | None:
    """The operator that starts at i (t[i] is one of _OP_START), or None for `&>`, a redirection."""
    two = t[i : i + 2]
    if two in _TWO:
        return two
    c = t[i]
    if c == "&" and i + 1 < n and t[i + 1] == ">":
        return None  # &> redirection
    return c


def _lit_text(word: Word) -> str | None:
    return word[0].text if len(word) == 1 and word[0].kind == "lit" else None


def _is_name_prefix(segs: Word) -> bool:
    text = "".join(s.text for s in segs if s.kind == "lit")
    name = text[:-1] if text.endswith("+") else text
    return len(segs) == 1 and segs[0].kind == "lit" and not segs[0].quoted and name.replace("_", "a").isalnum() and not name[0].isdigit()


def _match_paren(t: str, i: int) -> int:
    """Index just past the `)` matching the `(` at i, skipping quotes."""
    depth, n = 0, len(t)
    while i < n:
        c = t[i]
        if c == "\\":
            i += 2
            continue
        if c == "'":
            j = t.find("'", i + 1)
            i = n if j < 0 else j + 1
            continue
        if c == '"':
            j = i + 1
            while j < n and t[j] != '"':
                j += 2 if t[j] == "\\" else 1
            i = j + 1
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n
