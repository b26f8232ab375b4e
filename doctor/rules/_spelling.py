"""When a value no release accepts is a misspelling of one that is accepted, rather than a word of its own.

Forks and plugins add values (an SGLang branch's `--disaggregation-mode encode`, sgl-project/sglang#12665; vllm-ascend's
connector names); they do not respell existing ones. So a value that is the accepted one in another case or with `-`
and `_` swapped, or one edit away from it, is taken for a misspelling; anything further is a word of its own.
"""

from __future__ import annotations


def near_miss(value: str, accepted: frozenset[str]) -> str | None:
    """The accepted value `value` misspells: the same letters in another case or with `-`/`_` swapped (`Prefill`,
    `kv-producer`), or one edit away (a letter dropped, added, changed or two swapped: `prefil`, `kv_producter`,
    `kv_both_`) from a value of at least five letters. A fork's new mode is a word of its own (`encode` is two edits
    from `decode`, sgl-project/sglang#12665), so it is no near miss."""
    def norm(x: str) -> str:
        return x.lower().replace("-", "_")
    for a in sorted(accepted):
        if norm(a) == norm(value) or (len(a) >= 5 and one_edit(value, a)):
            return a
    return None


def one_edit(a: str, b: str) -> bool:
    """Whether a and b differ by one insertion, deletion, substitution or swap of two neighbouring letters."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = next((k for k in range(len(short)) if short[k] != long_[k]), len(short))
    return short[i:] == long_[i + 1:]
