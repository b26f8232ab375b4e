"""`--probe`'s known-answer canary: one fixed prompt, greedy, answered twice, compared token by token (DG507).

Through `disagg serve`, the two answers come from the same frontend: once prefilled remotely (the P/D path) and once
prefilled on the decode worker, each asked for with the runtime's per-request route (`"disagg": {"route": ...}`).
For any other stack, `--reference URL` names an aggregated endpoint of the same model: the deployment answers as it
routes, the reference answers without P/D. Both requests ask for greedy decoding (temperature 0, a fixed seed and
`max_tokens`) and per-token logprobs, whose tokens are compared (the text, where an endpoint gives no logprobs).

Neither answer may come from a prefix cache, or the comparison proves nothing: vLLM keeps received KV blocks in the
decode engine's prefix cache, so a local prefill after the P/D request would reuse (possibly wrong) transferred
blocks, and a P/D request after a local one would transfer nothing (its NIXL connector loads only what the prefix
cache lacks, see rules/live/_signals.py CACHE_FACTOR). So the prompt starts with a fresh nonce, and the two requests
to one frontend carry different `cache_salt`s (vLLM's request field, one of the extra keys of its block hashes:
docs.vllm.ai/en/latest/design/prefix_caching; `disagg serve` passes it on, and its mock engine honours it too).

Greedy decoding is not bitwise reproducible across batch shapes and kernels: two tokens whose logprobs are nearly
equal can swap (vLLM's "batch invariance" page, docs.vllm.ai/en/stable/features/batch_invariance, and
vllm-project/vllm#966). A divergence where the two answers' tokens are within NEAR_TIE nats (rules/live/_signals.py) of each other in either
answer's own distribution is reported as such (DG507 reads `tie_gap`), not as wrong KV.
"""

from __future__ import annotations

import secrets

from .scrape import ScrapeError, fetch_json

MAX_TOKENS = 16
SEED = 5077
TOP = 5  # alternatives per token: enough to find the other answer's token at a divergence
_TEXT = ("A known answer: the prefill worker computes this prompt's cache, the decode worker reads it and continues. "
         "If both paths agree, the cache arrived intact. ")


def canary_prompt(ctx, nonce: str) -> tuple[str, int]:
    """The fixed prompt after a nonce, longer than the routing threshold (so that the P/D path takes it without an
    override); its length in characters."""
    policy = ctx.policy()
    length = max((policy.max_local_prefill_length + 64) if policy else 1024, 256)
    text = f"[canary {nonce}] " + _TEXT * (length // len(_TEXT) + 1)
    return text[:length], length


def _ask(url: str, prompt: str, route: str | None, salt: str | None = None) -> dict:
    body = {"prompt": prompt, "max_tokens": MAX_TOKENS, "temperature": 0, "seed": SEED, "logprobs": TOP}
    if route is not None:
        body["disagg"] = {"route": route}
    if salt is not None:
        body["cache_salt"] = salt
    try:
        answer = fetch_json(url + "/v1/completions", timeout=60, data=body)
    except ScrapeError as exc:
        return {"error": str(exc)}
    if "error" in answer or not answer.get("choices"):
        err = answer.get("error")
        return {"error": (err.get("message") if isinstance(err, dict) else str(err)) or "no choices in the answer"}
    choice = answer["choices"][0]
    lp = choice.get("logprobs") or {}
    info = answer.get("disagg") or {}
    out = {"text": choice.get("text", ""), "finish_reason": choice.get("finish_reason"), "tokens": lp.get("tokens"), "token_logprobs": lp.get("token_logprobs"), "top_logprobs": lp.get("top_logprobs"),
           "route": info.get("route"), "reason": info.get("reason"), "prompt_tokens": (answer.get("usage") or {}).get("prompt_tokens")}
    if "override" in info:
        out["override"] = info["override"]
    return out


def divergence(a: dict, b: dict) -> tuple[int | None, str]:
    """(index of the first difference or None, "tokens" or "text"): tokens when both answers carry them."""
    if a.get("tokens") and b.get("tokens"):
        ta, tb = a["tokens"], b["tokens"]
        i = next((k for k, (x, y) in enumerate(zip(ta, tb)) if x != y), None)
        if i is None and len(ta) != len(tb):
            i = min(len(ta), len(tb))
        return i, "tokens"
    sa, sb = a.get("text", ""), b.get("text", "")
    i = next((k for k, (x, y) in enumerate(zip(sa, sb)) if x != y), None)
    if i is None and len(sa) != len(sb):
        i = min(len(sa), len(sb))
    return i, "text"


def tie_gap(a: dict, b: dict, i: int) -> float | None:
    """The smaller of the two margins at token `i`: how far above the other answer's token each answer's own token was,
    in its own distribution (a token outside the top alternatives counts as below the lowest of them). None when
    logprobs are missing."""
    gaps = []
    for own, other in ((a, b), (b, a)):
        try:
            chosen = own["token_logprobs"][i]
            top = own["top_logprobs"][i] or {}
            theirs = other["tokens"][i]
        except (KeyError, IndexError, TypeError):
            return None
        if chosen is None or not top:
            return None
        floor = top.get(theirs, min(top.values()))
        gaps.append(chosen - floor)
    return min(gaps)


def canary(url: str, ctx, reference: str | None = None) -> dict:
    """Ask twice and compare; the result is what DG507 reads (`compared`, `diverged_at`, both answers)."""
    nonce = secrets.token_hex(4)
    prompt, length = canary_prompt(ctx, nonce)
    base = {"prompt_tokens": length, "max_tokens": MAX_TOKENS, "seed": SEED}
    if reference:
        a, b = _ask(url, prompt, None), _ask(reference.rstrip("/"), prompt, None)
        a["label"], b["label"] = f"the deployment ({url})", f"the reference ({reference})"
        if a.get("route") == "local":  # a disagg frontend that says so: the comparison would not test P/D
            return {**base, "compared": False, "route": "local",
                    "message": f"canary: the deployment prefilled the canary locally (reason {a.get('reason')}): nothing to compare"}
    else:
        a = _ask(url, prompt, "remote", f"disagg-canary-{nonce}-pd")
        a["label"] = "the P/D path (prefilled remotely)"
        if "error" in a:
            return {**base, "compared": False, "message": f"canary: the P/D request failed: {a['error']}"}
        if a.get("route") is None:
            return {**base, "compared": False, "message": "canary: this frontend does not say where it prefilled (not disagg serve?): "
                                                          "give --reference URL, an aggregated endpoint of the same model, to compare with"}
        if a["route"] != "remote":
            why = (a.get("override") or {}).get("why") or f"reason {a.get('reason')}"
            return {**base, "compared": False, "route": a["route"],
                    "message": f"canary: the request meant for the P/D path was prefilled locally ({why}): nothing to compare"}
        b = _ask(url, prompt, "local", f"disagg-canary-{nonce}-local")
        b["label"] = "a local prefill on the decode worker"
    for side in (a, b):
        if "error" in side:
            return {**base, "compared": False, "message": f"canary: {side['label']} failed: {side['error']}"}
    if not reference and b.get("route") != "local":
        return {**base, "compared": False, "message": f"canary: the request meant for a local prefill went {b.get('route')}: nothing to compare"}
    i, basis = divergence(a, b)
    out = {**base, "prompt_tokens": a.get("prompt_tokens") or length, "compared": True, "basis": basis, "diverged_at": i, "answers": [a, b]}
    if i is None:
        # An answer may end before max_tokens at the model's end-of-sequence token; both ended at the same one.
        n = len(a["tokens"]) if basis == "tokens" else MAX_TOKENS
        ended = " (ended by the model)" if a.get("finish_reason") == "stop" else ""
        out["message"] = f"canary: {a['label']} and {b['label']} gave the same {n}-token greedy answer{ended}"
    else:
        gap = tie_gap(a, b, i) if basis == "tokens" else None
        out["tie_gap"] = None if gap is None else round(gap, 3)
        out["message"] = f"canary: {a['label']} and {b['label']} diverge at {'token' if basis == 'tokens' else 'character'} {i}"
    return out
