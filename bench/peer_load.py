"""The load `bench_peer.py` puts on a stack: random prompts made before the clock starts, clients at a concurrency,
and one measurement (latency, time to first token, CPU time and the stack's counters before and after)."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time

from peer_stacks import Stack, counters

VOCAB = 250  # token ids the tiny model takes (make-tiny-model)


def bodies(salt: str, n: int, isl: int, osl: int, stream: bool) -> list[bytes]:
    """`n` requests, each with its own random prompt (token ids), made before the clock starts."""
    import random

    rng = random.Random(salt)
    out = []
    for _ in range(n):
        body = {"model": "tiny", "prompt": [rng.randrange(1, VOCAB) for _ in range(isl)], "max_tokens": osl, "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        out.append(json.dumps(body).encode())
    return out


async def drive(url: str, concurrency: int, requests: list[bytes], stream: bool, new_connection: bool) -> dict:
    import aiohttp

    lat, ttft, events, tokens, errors = [], [], [], [], 0
    queue = iter(requests)

    async def client(session) -> None:
        nonlocal errors
        for body in queue:
            t0 = time.perf_counter()
            try:
                async with session.post(url + "/v1/completions", data=body, headers={"Content-Type": "application/json"}) as r:
                    if stream:
                        # A token event is one whose `choices` is not empty (the usage-only event at the end is
                        # not one). Dynamo's mocker tokens decode to empty text, so an event is not told apart by
                        # its text: the first token event is the first with any choice, and the events are counted.
                        first, n, data = None, 0, {}
                        async for line in r.content:
                            if line.startswith(b"data: {"):
                                compact = line.replace(b" ", b"")
                                if b'"choices":[]' not in compact:
                                    n += 1
                                    if first is None:
                                        first = time.perf_counter()
                                if b'"usage":{' in compact:
                                    data = json.loads(line[6:])
                        events.append(n)
                        if first is not None:
                            ttft.append(first - t0)
                    else:
                        data = await r.json(content_type=None)
                    tokens.append((data.get("usage") or {}).get("completion_tokens", 0))
                    if r.status != 200:
                        errors += 1
                        if errors == 1:  # say why, once: a run of silent errors hid a too-small max-model-len
                            print(f"{url}: HTTP {r.status}: {str(data)[:300] if not stream else '(stream)'}", file=sys.stderr)
            except aiohttp.ClientError:
                errors += 1
            lat.append(time.perf_counter() - t0)

    connector = aiohttp.TCPConnector(limit=0, force_close=new_connection)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    lat.sort()
    ttft.sort()
    return {"rps": len(lat) / wall, "p50": lat[len(lat) // 2], "p99": lat[min(len(lat) - 1, int(0.99 * len(lat)))], "errors": errors,
            "ttft": ttft[len(ttft) // 2] if ttft else None, "events": statistics.median(events) if events else None,
            "tokens": tokens}


def measure(stack: Stack, concurrency: int, requests: list[bytes], stream: bool, new_connection: bool) -> dict:
    seen = counters(stack.url, stack.side)
    before = stack.cpu_seconds()
    result = asyncio.run(drive(stack.url, concurrency, requests, stream, new_connection))
    after = stack.cpu_seconds()
    now = counters(stack.url, stack.side)
    result["cpu_ms_per_request"] = sum(after[p] - before.get(p, 0.0) for p in after) / len(requests) * 1e3
    by: dict[str, float] = {}
    for p in after:
        by[Stack.label(p)] = by.get(Stack.label(p), 0.0) + (after[p] - before.get(p, 0.0)) / len(requests) * 1e3
    result["cpu_by_process"] = by
    result["remote"] = now["remote"] - seen["remote"]
    result["cached_tokens"] = now["cached_tokens"] - seen["cached_tokens"]
    result["kv_bytes"] = now["kv_bytes"] - seen["kv_bytes"]
    result["missing"] = now["missing"]
    result["n"] = len(requests)
    return result
