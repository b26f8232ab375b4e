"""What a lexed launch script is: commands of words, each word made of literal, variable, substitution, array and
arithmetic pieces, and each piece's characters with the offsets they were written at (`shell_lex.py` makes them,
the interpreter in `shell.py` and its parts read them).
"""

from __future__ import annotations


class Seg:
    __slots__ = ("kind", "text", "offs", "quoted", "op", "arg", "items")

    def __init__(self, kind: str, text: str, offs: list[int] | range, quoted: bool = False, op: str = "", arg: list["Seg"] | None = None,
                 items: list[list["Seg"]] | None = None):
        self.kind = kind  # lit | var | sub | array | arith (`((...))` of a command or C-style for: text is what is inside)
        self.text = text  # literal text, or the variable's name
        # source offset of each literal character (a range where they are side by side in the file); for var/sub:
        # [start, end) of the expression
        self.offs = offs
        self.quoted = quoted
        self.op = op  # ${X:-w}: ":-"; ${X[@]}: "[@]"; ${#X}: "#"
        self.arg = arg  # the word after the operator
        self.items = items  # array literal elements


Word = list[Seg]


class Command:
    __slots__ = ("words", "end", "comments", "start", "head")

    def __init__(self, words: list[Word], end: str, comments: list[str] | None = None, start: int = 0):
        self.words = words
        self.end = end  # the separator that ended it
        self.comments = comments if comments is not None else []  # comments seen before it (never changed in place)
        self.start = start  # source offset of its first character
        # the first word when it holds no expansion (`for`, `fi`, `echo`), else None: the interpreter asks it of every
        # command several times
        if words:
            w = words[0]
            self.head = w[0].text if len(w) == 1 and w[0].kind == "lit" else plain(w)
        else:
            self.head = None


def plain(word: Word) -> str | None:
    """The text of a word with no expansion in it, else None."""
    if len(word) == 1:
        return word[0].text if word[0].kind == "lit" else None
    for s in word:  # a loop, not all(genexpr): the reader asks this of nearly every word it runs
        if s.kind != "lit":
            return None
    return "".join([s.text for s in word])
