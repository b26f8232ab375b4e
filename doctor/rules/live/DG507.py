from __future__ import annotations

from ...finding import Fix, Severity
from ...registry import Rule
from ._signals import NEAR_TIE


def _show(answer: dict, i: int, basis: str) -> str:
    if basis == "tokens":
        toks = answer.get("tokens") or []
        return repr(toks[i]) if i < len(toks) else "(end)"
    text = answer.get("text", "")
    return repr(text[i : i + 12]) if i < len(text) else "(end)"


class DG507(Rule):
    """## What it does
    Reports a deployment whose P/D path gives a different answer to a known prompt. `--probe` sends one fixed prompt
    with greedy decoding (temperature 0, a fixed `seed` and `max_tokens`, per-token logprobs) twice: through
    `disagg serve`, once prefilled remotely and once prefilled on the decode worker (the per-request route
    `"disagg": {"route": ...}`); for any other stack, to the deployment and to `--reference URL`, an aggregated
    endpoint of the same model. It compares the tokens and reports where the answers diverge, with both answers.

    ## Why is this bad?
    Wrong KV gives a wrong answer with HTTP 200, and no counter moves: vLLM's NIXL path can decode from a stale
    block reference and return another prompt's answer (vllm-project/vllm#52234); SGLang answered wrongly when
    speculative decoding ran on decode but not prefill (sgl-project/sglang PR#17212). Only comparing answers shows it.
    A divergence between two tokens within 0.3 nats of each other may be floating-point noise between batch shapes
    (vLLM's batch-invariance docs, vllm-project/vllm#966): that is an info, not an error. Where logprobs are missing,
    so that the margin is unknown, it is a warning.

    ## Example
    ```sh
    disagg doctor --live http://127.0.0.1:8000 --probe   # the decode worker reads a stale KV block
    ```

    ## Use instead
    ```sh
    # fix the transfer (see the engine's connector logs), then check again; for another stack:
    disagg doctor --live http://pd-frontend:8000 --probe --reference http://aggregated:8000
    ```
    """

    code = "DG507"
    name = "pd-answer-differs"
    severity = Severity.ERROR
    also = {Severity.WARNING: "the endpoints gave no logprobs, so a numerical near tie cannot be ruled out",
            Severity.INFO: "the diverging tokens were a near tie (within 0.3 nats): floating-point noise can swap them"}
    live = True

    def check(self, ctx):
        c = (ctx.probe or {}).get("canary")
        if not c or not c.get("compared") or c.get("diverged_at") is None:
            return
        a, b = c["answers"]
        i, basis = c["diverged_at"], c["basis"]
        gap = c.get("tie_gap")
        if gap is None:
            severity, confidence = Severity.WARNING, 0.7
        elif gap < NEAR_TIE:
            severity, confidence = Severity.INFO, 0.4
        else:
            severity, confidence = Severity.ERROR, 0.95
        unit = "token" if basis == "tokens" else "character"
        yield ctx.finding(
            self, f"the same greedy {c['prompt_tokens']}-token prompt got different answers from {a['label']} and {b['label']}: they diverge at {unit} {i} "
                  f"({_show(a, i, basis)} vs {_show(b, i, basis)})" + (f"; the two tokens were {gap:.2f} nats apart" if gap is not None else ""),
            severity=severity,
            fix=Fix("check the KV transfer path: the connector's logs, block reuse and expiry (vllm#52234), the same model, dtype and "
                    "speculative settings on both sides; then run --probe again"),
            subject="canary", confidence=confidence,
            evidence={"diverged_at": i, "basis": basis, "tie_gap": gap, "prompt_tokens": c["prompt_tokens"], "max_tokens": c["max_tokens"],
                      "answer_pd": a.get("text"), "answer_reference": b.get("text"), "tokens_pd": a.get("tokens"), "tokens_reference": b.get("tokens"),
                      "routes": [a.get("route"), b.get("route")]},
        )
