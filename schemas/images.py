"""What an image runs when a container (or `docker run IMAGE args`) gives it only arguments: the images whose
entrypoint is known, and the engine the arguments fit otherwise."""

from __future__ import annotations

import re
from typing import NamedTuple

from .cmdline import Arg, _undefined_flags


class ServeImage(NamedTuple):
    plugin: str  # the vLLM plugin the image installs ("" for none)
    vllm: str  # the vLLM release it runs
    why: str


# Images whose entrypoint runs `vllm serve "$@"`, by repository and tag, each from the Dockerfile that builds it.
# volcano-sh/kthena's kthena-engine:vllm-ascend_v0.10.1rc1_mooncake_v0.3.5 (the one tag its examples and docs use) is
# docker/Dockerfile.mooncake-npu-a3 (FROM quay.io/ascend/vllm-ascend:v0.10.1rc1-a3, MOONCAKE_TAG 0.3.5): its
# ENTRYPOINT runs /app/entrypoint.sh, which ends `exec vllm serve "$@"` (volcano-sh/kthena at
# e415404342a4996b6880492a671982ccbe069f33). vllm-ascend v0.10.1rc1's images build vLLM v0.10.1.1 (its Dockerfile's
# VLLM_TAG at the release-note commit 7e16b4a7cdb15723c63c1c0efe58672a056eace8 of vllm-project/vllm-ascend).
VLLM_SERVE_IMAGES: dict[str, dict[str, ServeImage]] = {
    "ghcr.io/volcano-sh/kthena-engine": {
        "vllm-ascend_v0.10.1rc1_mooncake_v0.3.5": ServeImage("vllm-ascend", "0.10.1.1", "kthena-engine is built on vllm-ascend v0.10.1rc1 (vLLM v0.10.1.1)")},
}


def image_repo_tag(image: str) -> tuple[str, str | None]:
    """(repository, tag) of an image reference (`REPO[:TAG][@DIGEST]`); the tag None when not written."""
    ref = image.split("@")[0]
    if ":" in ref.rsplit("/", 1)[-1]:
        repo, _, tag = ref.rpartition(":")
        return repo, tag
    return ref, None


def vllm_serve_image(image: str | None) -> ServeImage | None:
    """What an image known (VLLM_SERVE_IMAGES) to run `vllm serve` on its arguments runs, or None."""
    if not isinstance(image, str) or not image or "$" in image:
        return None
    repo, tag = image_repo_tag(image.strip().lower())
    return VLLM_SERVE_IMAGES.get(repo, {}).get(tag or "")


def engine_from_image(image: str | None, words: list[Arg]) -> str | None:
    """The serving program an image runs when a container (or `docker run IMAGE args`) gives only arguments: from
    the image name when it says, else from the flags (`--model-path` is SGLang's spelling, `--model` vLLM's).

    Arguments that begin with a model rather than a flag fit only `vllm serve`, the entrypoint of vLLM's
    vllm-openai image (vllm-project/vllm docker/Dockerfile); they are read so when the image is vllm-openai, or
    is not known and the flags are vLLM-only (`--kv-transfer-config`); never for another image (Dynamo's
    vllm-runtime, SGLang's), whose entrypoint is no `vllm serve`."""
    low = (image or "").lower()
    named = None
    if "$" not in low and low:
        if vllm_serve_image(image) is not None:
            return "vllm"
        if "vllm-openai" in low or re.search(r"(^|/)vllm[-/:]", low) or "llm-d" in low:
            named = "vllm"
        elif "sglang" in low:
            named = "sglang"
    flags = {a.text.split("=", 1)[0] for a in words if a.text.startswith("--")}
    positional_first = bool(words) and not words[0].text.startswith("-")
    if positional_first:
        repo = low.split("@")[0].rsplit(":", 1)[0] if ":" in low.rsplit("/", 1)[-1] else low.split("@")[0]
        if repo.endswith("vllm-openai") or vllm_serve_image(image) is not None:
            return "vllm"
        return "vllm" if (not low or "$" in low) and "--kv-transfer-config" in flags else None
    if named == "sglang" and _undefined_flags("sglang", flags):
        # an image whose name says sglang but whose arguments SGLang's parser rejects runs something else (a simulator
        # of it, a wrapper): SGLang's server parses its arguments with argparse's `parse_args`, which exits on any flag it
        # does not define (bytedance-iaas/sglang@6ed5780, a fork of sgl-project/sglang at v0.5.17:
        # python/sglang/srt/server_args.py:9367,9379 prepare_server_args)
        return None
    if named:
        return named
    if "--model-path" in flags:
        return "sglang"
    if "--model" in flags or "--kv-transfer-config" in flags:
        return "vllm"
    return None
