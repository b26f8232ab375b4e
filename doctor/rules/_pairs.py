"""Prefill/decode pairs of a deployment read from scripts, manifests or compose files (`ctx.deployment`)."""

from __future__ import annotations

VLLM_FAMILY = ("vllm", "dynamo.vllm")
SGLANG_FAMILY = ("sglang", "dynamo.sglang")


def family(engine: str) -> str:
    return "vllm" if engine in VLLM_FAMILY else "sglang" if engine in SGLANG_FAMILY else engine


def pairs(ctx):
    """(decode, prefill) pairs of the same engine family: the pairs that must agree to exchange KV."""
    dep = ctx.deployment
    if dep is None:
        return []
    out = []
    for d in dep.of_role("decode"):
        for p in dep.of_role("prefill"):
            if family(d.engine) == family(p.engine):
                out.append((d, p))
    return out


def engines(ctx):
    dep = ctx.deployment
    return [] if dep is None else [w for w in dep.workers if w.role in ("prefill", "decode", "aggregated", "unknown")]


def norm(value, default=None) -> str:
    return str(default if value is None else value).strip().lower()


def known(value) -> bool:
    """False for values a script computes at run time (`$TP`, `${MODEL}`): nothing can be said about them."""
    return value is not None and "$" not in str(value) and "`" not in str(value)


def as_int(value, default: int | None = None) -> int | None:
    """An integer flag value; `default` when unset, None when it is no integer (a shell variable, a typo)."""
    if value is None:
        return default
    try:
        return int(str(value).strip())
    except ValueError:
        return None
