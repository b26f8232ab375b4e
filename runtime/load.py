"""`disagg load`: send a bounded burst of completions to a frontend and summarise where their prefill ran."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

NOT_OPENAI = "answer is not an OpenAI completion (JSON object)"
# errors that say the URL is not a serving frontend at all, rather than a frontend failing some requests
UNREACHABLE = ("ClientConnectorError", "ServerDisconnectedError", "InvalidURL", "InvalidUrlClientError", "ConnectionRefusedError", "TimeoutError",
               "HTTP 404", "HTTP 405", "HTTP 501", NOT_OPENAI)


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0
    errors: Counter = field(default_factory=Counter)
    routes: Counter = field(default_factory=Counter)  # (route, reason) -> count
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0


def make_prompt(isl: int, seed: int) -> str:
    """A prompt of exactly `isl` byte-level tokens, different per request so no prefix cache hides the prefill."""
    rng = random.Random(seed)
    words = "disaggregated serving moves the kv cache from prefill to decode workers over nixl".split()
    text = ""
    while len(text.encode()) < isl:
        text += rng.choice(words) + " "
    return text.encode()[:isl].decode(errors="ignore")


async def served_model(session: aiohttp.ClientSession, url: str) -> str | None:
    """The first model the frontend lists (servers such as Dynamo's require `model` in each request)."""
    try:
        async with session.get(url.rstrip("/") + "/v1/models", timeout=aiohttp.ClientTimeout(total=5)) as r:
            data = (await r.json(content_type=None)).get("data") or []
            return data[0]["id"] if data else None
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError, KeyError, TypeError):
        return None


async def run_load(url: str, isl: int, osl: int, requests: int, concurrency: int, timeout: float = 60.0, model: str | None = None) -> LoadResult:
    result = LoadResult()
    next_id = iter(range(requests))
    t0 = time.perf_counter()

    async def client(session: aiohttp.ClientSession) -> None:
        for i in next_id:
            body = {"prompt": make_prompt(isl, i), "max_tokens": osl}
            if model:
                body["model"] = model
            start = time.perf_counter()
            result.sent += 1
            try:
                async with session.post(url.rstrip("/") + "/v1/completions", json=body, timeout=aiohttp.ClientTimeout(total=timeout)) as r:
                    if r.status != 200:
                        result.errors[f"HTTP {r.status}"] += 1
                        continue
                    try:
                        data = await r.json(content_type=None)
                    except (ValueError, UnicodeDecodeError):
                        data = None
                    if not isinstance(data, dict):
                        result.errors[NOT_OPENAI] += 1
                        continue
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                result.errors[type(exc).__name__] += 1
                continue
            result.ok += 1
            result.latencies.append(time.perf_counter() - start)
            info = data.get("disagg") if isinstance(data.get("disagg"), dict) else {}
            result.routes[(info.get("route", "?"), info.get("reason", "?"))] += 1

    async with aiohttp.ClientSession() as session:
        if model is None:
            model = await served_model(session, url)
        await asyncio.gather(*(client(session) for _ in range(max(1, concurrency))))
    result.seconds = time.perf_counter() - t0
    return result


def not_a_frontend(r: LoadResult) -> bool:
    """No request answered, and every failure says the URL serves no completions (rather than a frontend failing)."""
    return r.ok == 0 and bool(r.errors) and all(e in UNREACHABLE for e in r.errors)


def summary(r: LoadResult) -> list[str]:
    lines = [f"{r.ok}/{r.sent} requests ok in {r.seconds:.1f} s" + (f"; errors: {dict(r.errors)}" if r.errors else "")]
    if r.latencies:
        lines.append(f"latency p50 {statistics.median(r.latencies) * 1e3:.0f} ms, max {max(r.latencies) * 1e3:.0f} ms")
    for (route, reason), n in r.routes.most_common():
        lines.append(f"  {n:>5}  route={route:<6} reason={reason}")
    return lines
