"""`--probe` and the dashboard's `p` key: one request longer than the threshold, and where its prefill ran."""

from __future__ import annotations

from .scrape import ScrapeError, fetch_json


def probe_once(url: str, ctx) -> dict:
    """One request longer than the threshold: did it go remote, and why not?"""
    policy = ctx.policy()
    length = (policy.max_local_prefill_length + 64) if policy else 1024
    prompt = ("probe " * (length // 6 + 1))[:length]
    try:
        body = fetch_json(url + "/v1/completions", timeout=30, data={"prompt": prompt, "max_tokens": 1})
    except ScrapeError as exc:
        return {"prompt_tokens": length, "error": str(exc), "message": f"the probe request failed: {exc}"}
    info = body.get("disagg")
    if not info:
        return {"prompt_tokens": length, "message": f"the {length}-token probe was answered, but this frontend does not say where it was prefilled"}
    return {"prompt_tokens": length, "route": info.get("route"), "reason": info.get("reason"),
            "message": f"a {length}-token prompt was prefilled {'remotely' if info.get('route') == 'remote' else 'locally'} (reason {info.get('reason')})"}
