"""What `"$(f ARGS)"` gives where `f` is a function of the script that prints text: the here-document it prints with
`cat <<EOF` (expanded as the shell expands an unquoted one: `$VAR`, `${VAR}`, `${VAR:-word}`, positional parameters)
or the words it echoes. Launchers build a role's `--kv-transfer-config` that way:
`kv_json(){ local role="$1"; cat <<JSON ... "kv_role":"${role}" ... JSON }` and `--kv-transfer-config "$(kv_json kv_producer)"`.

The function runs as the shell runs a command substitution, in a subshell: what it sets, starts or stops stays there,
and its `exit` ends only it. Its output is known only when everything it runs is known to print nothing else
(assignments, `local`, `cat` of a printed here-document, `echo`); any other command, a `$(...)` inside the
here-document or an `echo -e` makes the whole output unknown, and the word stays as written (set at run time)."""

from __future__ import annotations

import re

from .shell_expand import PStr, State, concat
from .shell_lex import Lexer
from .shell_words import Command as LexCommand
from .shell_words import Word, plain

# in an unquoted here-document the shell expands parameters, `$(...)` and backquotes, and `\` escapes only $ ` \ and
# the newline (bash(1), Here Documents)
_PARAM = re.compile(r"\\[$`\\\n]|\$\{([A-Za-z_][A-Za-z0-9_]*|[0-9])(?:(:?[-=+?])([^}$`\\]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*|[0-9])|\$[({@*#?!$-]|`")
# commands a printing function may run that print nothing themselves (or whose printing is read here)
_QUIET = frozenset({"local", "declare", "typeset", "export", "readonly", ":", "true", "return", "set", "shift"})
_MAX_DEPTH = 6


class Output:
    """Mixed into ShellReader."""

    printed: dict[int, tuple[str, list[int], bool]] = {}  # readers/heredoc.printed_bodies: line -> (body, offsets, quoted)

    def function_output(self, s, st: State) -> PStr | None:
        """The output of the command substitution `s` when it calls a printing function of the script, else None."""
        inner = s.text[2:-1]
        if st.depth > _MAX_DEPTH or not inner.strip():
            return None
        base = s.offs[0] + 2 if len(s.offs) == 2 and s.offs[1] - s.offs[0] == len(s.text) else None
        cmds = [c for c in Lexer(inner, range(base, base + len(inner)) if base is not None else [-1] * len(inner)).commands() if c.words]
        if len(cmds) != 1:
            return None
        head = self.expand(cmds[0].words[0], st)
        if len(head) != 1 or head[0].text not in st.funcs:
            return None
        args = [p for w in cmds[0].words[1:] for p in self.expand(w, st)]
        scope, saved = st.scope(), (st.epoch, list(st.recent), len(st.launches), len(st.scripts_run))
        outer, st.capture = st.capture, []
        st.child += 1
        try:
            self.call(head[0].text, args, st)
            out = st.capture
        finally:
            st.child -= 1
            st.capture = outer
            st.restore(scope)
            st.epoch, st.recent = saved[:2]
            del st.launches[saved[2]:]
            del st.scripts_run[saved[3]:]
        if not out or any(o is None for o in out):
            return None
        text = concat(out, "\n")
        end = len(text.text.rstrip("\n"))  # a command substitution drops the trailing newlines
        return PStr(text.text[:end], text.offs[:end])

    def captured(self, words: list[Word], k: int, cmd: LexCommand, st: State) -> bool:
        """While a printing function runs for its output: take what this command prints; True when handled here."""
        head = plain(words[k])
        if head in _QUIET:
            return False
        if any(_to_elsewhere(w) for w in words[k + 1 :]):
            return True  # `echo "starting" >&2`, `cat <<EOF > file`: what it prints does not go to the caller
        if head == "cat" and (entry := self.printed.get(self.line_col(cmd.start)[0])) is not None:
            st.capture.append(self._here_document(*entry, st))
        elif head == "echo":
            parts = [p for w in words[k + 1 :] for p in self.expand(w, st)]
            flags = [p.text for p in parts[:1] if p.text.startswith("-")]
            st.capture.append(None if flags and flags[0] != "-n" else concat(parts[1:] if flags else parts, " "))
        else:
            st.capture.append(None)  # a command whose output is not known here
        return True

    def _here_document(self, text: str, offs: list[int], quoted: bool, st: State) -> PStr | None:
        if quoted:  # `<<'EOF'`: the text as written
            return PStr(text, list(offs))
        parts: list[PStr] = []
        pos = 0
        for m in _PARAM.finditer(text):
            tok = m.group(0)
            if tok[0] == "`" or tok in ("$(", "${") or (tok[0] == "$" and len(tok) == 2 and tok[1] in "@*#?!$-"):
                return None  # a command substitution, or an expansion not read here: the text is not known
            parts.append(PStr(text[pos : m.start()], offs[pos : m.start()]))
            pos = m.end()
            if tok[0] == "\\":
                if tok != "\\\n":
                    parts.append(PStr(tok[1], [offs[m.start() + 1]]))
                continue
            name, op, word = m.group(1) or m.group(4), m.group(2), m.group(3)
            value = self.lookup(name, st)
            if isinstance(value, list):
                value = concat(value, " ")
            word_at = m.start(3) if m.group(3) is not None else m.end()
            default = PStr(word or "", offs[word_at : word_at + len(word or "")])
            if op in (":-", "-", ":=", "="):
                value = default if value is None or (op[0] == ":" and not value.text) else value
            elif op in (":+", "+"):
                value = default if value is not None and (op == "+" or value.text) else PStr()
            parts.append(value if value is not None else PStr(tok, offs[m.start() : m.end()]))  # unset: set at run time
        parts.append(PStr(text[pos:], offs[pos:]))
        return concat(parts)


def _to_elsewhere(word: Word) -> bool:
    """A redirection that sends the command's standard output away: `>`, `>>`, `1>`, `>&2`, `&>` (not `2>`, `2>&1`,
    `<`)."""
    if len(word) != 1 or word[0].kind != "lit" or word[0].text != ">" or not word[0].op:
        return False
    op = word[0].op
    return not op.startswith("<") and (op[0] in ">&" or op.startswith("1"))

