"""Facts several rules derive from a parsed config, computed the same way for all of them."""

from __future__ import annotations

from typing import Any

from disagg.schemas.config import Section

from ..context import LintContext

VLLM_DEFAULT_BLOCK_SIZE = 16  # tokens; vLLM's default on GPUs when block-size is not given


def decode(ctx: LintContext) -> Section | None:
    return ctx.section("VllmWorker")


def prefill(ctx: LintContext) -> Section | None:
    return ctx.section("PrefillWorker")


def prefill_capacity(ctx: LintContext) -> tuple[int, str]:
    """(usable prefill worker processes, why none when 0)."""
    sec = prefill(ctx)
    if sec is None:
        return 0, "there is no PrefillWorker section"
    sargs = sec.model.service_args
    if sargs.workers <= 0:
        return 0, f"PrefillWorker has workers: {sargs.workers}"
    if sargs.resources.gpu == 0:
        return 0, "PrefillWorker asks for gpu: 0"
    return sargs.workers, ""


def prefill_position(ctx: LintContext) -> tuple[Any, ...]:
    """Where to point when blaming the prefill side: its workers count if zero, else the section."""
    sec = prefill(ctx)
    if sec is None:
        return ("PrefillWorker",)
    if "ServiceArgs" in sec.own and isinstance(sec.own["ServiceArgs"], dict):
        sargs = sec.own["ServiceArgs"]
        if "workers" in sargs and sec.model.service_args.workers <= 0:
            return ("PrefillWorker", "ServiceArgs", "workers")
        res = sargs.get("resources")
        if isinstance(res, dict) and "gpu" in res and sec.model.service_args.resources.gpu == 0:
            return ("PrefillWorker", "ServiceArgs", "resources", "gpu")
    return ("PrefillWorker",)


def value(sec: Section | None, key: str, default: Any = None) -> Any:
    """The typed value of `key` after common-configs resolution, or `default` when unset or invalid."""
    if sec is None or not sec.is_set(key):
        return default
    got = getattr(sec.model, key.replace("-", "_"), None)
    return default if got is None else got


def max_model_len(ctx: LintContext) -> tuple[int | None, tuple[Any, ...]]:
    """The decode worker's max-model-len, else the Processor's, with where it was set."""
    for name in ("VllmWorker", "Processor"):
        sec = ctx.section(name)
        got = value(sec, "max-model-len")
        if got is not None and sec is not None:
            return got, sec.path_of("max-model-len")
    return None, ()
