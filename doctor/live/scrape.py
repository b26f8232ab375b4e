"""HTTP reads for the live doctor: bounded in time (at most 2 s) and size, loopback or wherever the user points."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

MAX_BYTES = 16 * 2**20  # a /metrics page larger than this is refused
TIMEOUT = 2.0  # seconds, per request


class ScrapeError(Exception):
    pass


def fetch(url: str, timeout: float = TIMEOUT, max_bytes: int = MAX_BYTES, data: bytes | None = None) -> bytes:
    try:
        req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {}, method="POST" if data else "GET")
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        body = exc.read(max_bytes + 1)
        if exc.code >= 400 and not body:
            raise ScrapeError(f"{url}: HTTP {exc.code}") from None
        if exc.code >= 500 or exc.code == 404:
            raise ScrapeError(f"{url}: HTTP {exc.code}{_said(body)}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ScrapeError(f"{url}: {reason}") from None
    if len(body) > max_bytes:
        raise ScrapeError(f"{url}: response over {max_bytes // 2**20} MiB, refused")
    return body


def _said(body: bytes) -> str:
    """What an error answer's JSON says (OpenAI's {"error": {"message"}}), so a failure names its cause."""
    try:
        err = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return ""
    msg = err.get("message") if isinstance(err, dict) else err
    return f" ({str(msg)[:300]})" if msg else ""


def fetch_json(url: str, timeout: float = TIMEOUT, data: dict | None = None) -> dict:
    body = fetch(url, timeout, data=json.dumps(data).encode() if data is not None else None)
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ScrapeError(f"{url}: not JSON") from None
