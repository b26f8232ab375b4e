"""One prefill-to-decode round trip per engine pair before `disagg serve --engine vllm` says it is ready.

vLLM's NixlConnector meets a peer lazily: the first request a decode engine gets from a prefill engine starts the NIXL
handshake over that prefill engine's side channel, a ZMQ request that waits 5 s for its answer
(vllm/distributed/kv_transfer/kv_connector/v1/nixl/base_worker.py `_nixl_handshake`, `RCVTIMEO` 5000, vLLM 0.32.0),
and UCX connects on the first read. On this 2-core machine, with both engines just started, that first exchange
timed out (`handshake_setup_failed`) and the request was prefilled on the decode engine instead
(`kv_transfer_failed`); the first user request paid for it. So the supervisor makes that exchange itself: a prompt
of WARMUP_TOKENS token ids, prefilled with `do_remote_decode` and decoded with the returned `kv_transfer_params`
(max_tokens 1), retried up to ATTEMPTS times, straight to the engines (the frontend's counters stay the users').
The engines run `kv_load_failure_policy: fail`, so a decode answer means the KV was read. What it found is said
either way; a pair that never succeeds does not stop the run (each request then falls back as it would)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

ATTEMPTS = 3
TIMEOUT = 90.0  # seconds for one request: the first read connects UCX
WARMUP_TOKENS = 48  # three 16-token blocks: a transfer of whole blocks


def warm_up(decode_urls: list[str], prefill_urls: list[str], model: str, api_key: str, say) -> dict[tuple[str, str], bool]:
    """(decode URL, prefill URL) -> whether a P/D round trip between them succeeded."""
    out = {}
    for d in decode_urls:
        for p in prefill_urls:
            out[(d, p)] = _pair(d, p, model, api_key, say)
    return out


def _pair(decode: str, prefill: str, model: str, api_key: str, say) -> bool:
    prompt = list(range(10, 10 + WARMUP_TOKENS))
    why = ""
    for attempt in range(1, ATTEMPTS + 1):
        start = time.monotonic()
        try:
            first = _post(prefill, {"model": model, "prompt": prompt, "max_tokens": 1, "temperature": 0,
                                    "kv_transfer_params": {"do_remote_decode": True, "do_remote_prefill": False}}, api_key)
            params = first.get("kv_transfer_params")
            if not params:
                why = "the prefill engine returned no kv_transfer_params"
                break  # not a transient failure: the connector is not set up for P/D
            _post(decode, {"model": model, "prompt": prompt, "max_tokens": 1, "temperature": 0, "kv_transfer_params": params}, api_key)
            say(f"KV path {prefill} -> {decode}: a warm-up prefill was read over NIXL in {time.monotonic() - start:.1f} s"
                + (f" (attempt {attempt})" if attempt > 1 else ""))
            return True
        except (urllib.error.URLError, OSError, ValueError) as exc:
            why = _reason(exc)
    say(f"KV path {prefill} -> {decode}: the warm-up did not complete ({why}); requests routed to this pair fall back "
        "to a local prefill (kv_transfer_failed) until the engines' NIXL handshake succeeds")
    return False


def _post(url: str, body: dict, api_key: str) -> dict:
    req = urllib.request.Request(url + "/v1/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"})
    with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
        return json.loads(r.read())


def _reason(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        try:
            detail = exc.read()[:200].decode("utf-8", "replace")
        except OSError:
            detail = ""
        return f"HTTP {exc.code} {detail}".strip()
    return str(getattr(exc, "reason", exc))[:200]
