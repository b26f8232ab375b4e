"""Command lines of serving engines, with the source position of every word, flag value and JSON key.

Shell words are split the way POSIX sh does for the cases deployment scripts use (quotes, backslash escapes and
line continuations, `VAR=value` prefixes, `export`, `&`, `;`, `&&`), keeping each word's offset so that a finding
inside `--kv-transfer-config '{"kv_connector": ...}'` points at the JSON key itself.
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple


class Span(NamedTuple):
    line: int
    column: int
    end_line: int
    end_column: int


class Word(NamedTuple):
    text: str  # after quote removal
    start: int  # offset of the word's first character in the source text
    raw_start: list[int]  # source offset of each character of `text` (for positions inside the word)


def split_words(text: str) -> list[list[Word]]:
    """Shell words of `text`, grouped into simple commands (split at newlines, `;`, `&`, `&&`, `||`, `|`)."""
    commands: list[list[Word]] = [[]]
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] == "\n":
            i += 2
            continue
        if c in " \t\r":
            i += 1
            continue
        if c == "#" and (i == 0 or text[i - 1] in " \t\n;&|"):
            while i < n and text[i] != "\n":
                i += 1
            continue
        if c in "\n;&|":
            if commands[-1]:
                commands.append([])
            i += 1
            continue
        chars: list[str] = []
        offsets: list[int] = []
        start = i
        while i < n and text[i] not in " \t\r\n;&|":
            c = text[i]
            if c == "\\" and i + 1 < n:
                if text[i + 1] == "\n":
                    i += 2
                    continue
                chars.append(text[i + 1])
                offsets.append(i + 1)
                i += 2
            elif c == "'":
                j = text.find("'", i + 1)
                j = n if j < 0 else j
                chars.extend(text[i + 1 : j])
                offsets.extend(range(i + 1, j))
                i = j + 1
            elif c == '"':
                i += 1
                while i < n and text[i] != '"':
                    if text[i] == "\\" and i + 1 < n and text[i + 1] in '"\\$`\n':
                        if text[i + 1] != "\n":
                            chars.append(text[i + 1])
                            offsets.append(i + 1)
                        i += 2
                        continue
                    chars.append(text[i])
                    offsets.append(i)
                    i += 1
                i += 1
            else:
                chars.append(c)
                offsets.append(i)
                i += 1
        commands[-1].append(Word("".join(chars), start, offsets))
    return [c for c in commands if c]


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
        return Span(line, col, end[0], end[1] + 1)


def line_starts(text: str) -> list[int]:
    starts = [0]
    for m in re.finditer("\n", text):
        starts.append(m.end())
    return starts


def to_line_col(starts: list[int], offset: int) -> tuple[int, int]:
    import bisect

    i = bisect.bisect_right(starts, offset) - 1
    return i + 1, offset - starts[i] + 1


def args_from_text(text: str, base_line: int = 1, base_col: int = 1) -> list[list[Arg]]:
    """Commands of a shell text; positions relative to where the text starts in its file."""
    starts = line_starts(text)
    out = []
    for words in split_words(text):
        cmd = []
        for w in words:
            pos = []
            for off in w.raw_start:
                line, col = to_line_col(starts, off)
                pos.append((base_line + line - 1, (base_col + col - 1) if line == 1 else col))
            if pos:
                span = Span(pos[0][0], pos[0][1], pos[-1][0], pos[-1][1] + 1)
            else:
                line, col = to_line_col(starts, w.start)
                span = Span(base_line + line - 1, col, base_line + line - 1, col + 2)
            cmd.append(Arg(w.text, span, tuple(pos)))
        out.append(cmd)
    return out


# --- engine command lines ---------------------------------------------------------------------------------------

BOOL_FLAGS = frozenset(
    """
    enforce-eager enable-prefix-caching no-enable-prefix-caching enable-chunked-prefill no-enable-chunked-prefill
    trust-remote-code disable-log-requests disable-log-stats is-prefill-worker enforce-disagg enable-expert-parallel
    disable-radix-cache enable-dp-attention skip-tokenizer-init enable-metrics
    """.split()
)


class Command(NamedTuple):
    program: str  # vllm | vllm-api-server | dynamo.vllm | dynamo.frontend | sglang | sglang-router | vllm-proxy
    args: list[Arg]
    flags: dict[str, Arg]  # --flag -> its value (the flag itself for bare flags)
    flag_spans: dict[str, Span]  # --flag -> where the flag is written
    positional: list[Arg]
    env: dict[str, Arg]  # VAR=value words written before the program
    start: Span


_PROGRAMS = {
    "vllm.entrypoints.openai.api_server": "vllm",
    "dynamo.vllm": "dynamo.vllm",
    "dynamo.frontend": "dynamo.frontend",
    "dynamo.sglang": "dynamo.sglang",
    "sglang.launch_server": "sglang",
    "sglang_router.launch_router": "sglang-router",
    "sglang_router.launch_server": "sglang-router",
}


def find_command(args: list[Arg]) -> Command | None:
    """The serving engine a command line runs, if any; `VAR=value` words before it become its environment."""
    env: dict[str, Arg] = {}
    i = 0
    while i < len(args) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", args[i].text):
        name, _, value = args[i].text.partition("=")
        env[name] = Arg(value, args[i].pos_of(len(name) + 1, len(value)), args[i].char_pos[len(name) + 1 :])
        i += 1
    while i < len(args) and args[i].text in ("exec", "nohup", "env", "time", "numactl", "taskset", "uv", "run"):
        i += 1
    rest = args[i:]
    if not rest:
        return None
    program, body = None, []
    words = [a.text for a in rest]
    base = words[0].rsplit("/", 1)[-1]
    if base == "vllm" and len(words) > 1 and words[1] == "serve":
        program, body = "vllm", rest[2:]
    elif base.startswith("python"):
        if len(words) > 2 and words[1] == "-m" and words[2] in _PROGRAMS:
            program, body = _PROGRAMS[words[2]], rest[3:]
        elif len(words) > 1 and words[1].endswith(("toy_proxy_server.py", "disagg_proxy_server.py", "disagg_prefill_proxy_server.py")):
            program, body = "vllm-proxy", rest[2:]
    elif base in ("sglang-router", "sglang_router"):
        program, body = "sglang-router", rest[1:]
    if program is None:
        return None
    flags: dict[str, Arg] = {}
    flag_spans: dict[str, Span] = {}
    positional: list[Arg] = []
    j = 0
    while j < len(body):
        a = body[j]
        if a.text.startswith("--") and len(a.text) > 2:
            name, eq, value = a.text[2:].partition("=")
            name = name.replace("_", "-")
            flag_spans[name] = a.pos_of(0, len(name) + 2)
            if eq:
                flags[name] = Arg(value, a.pos_of(len(name) + 3, len(value)), a.char_pos[len(name) + 3 :])
            elif name in BOOL_FLAGS or j + 1 >= len(body) or body[j + 1].text.startswith("--"):
                flags[name] = Arg("true", a.span, ())
            else:
                flags[name] = body[j + 1]
                j += 1
        else:
            positional.append(a)
        j += 1
    return Command(program, rest, flags, flag_spans, positional, env, rest[0].span)


def json_arg(arg: Arg) -> tuple[dict | None, str | None, dict[str, Span]]:
    """(object, error, key -> span of the key inside the argument) of a JSON flag value."""
    try:
        obj = json.loads(arg.text)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON: {exc.msg} at character {exc.pos + 1}", {}
    if not isinstance(obj, dict):
        return None, "must be a JSON object", {}
    spans = {}
    for key in obj:
        m = re.search(r'"' + re.escape(key) + r'"\s*:', arg.text)
        if m:
            spans[key] = arg.pos_of(m.start() + 1, len(key))
    return obj, None, spans
