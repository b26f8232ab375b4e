"""How the frontend talks to its workers, per engine: the mock workers' own protocol, or vLLM's OpenAI server with
the NixlConnector's `kv_transfer_params` handshake.

Both expose the same four calls to the router: `health`, `prefix_hit`, `prefill` (remote prefill, returns a KV
handle) and `generate` (decode, optionally reading that KV first), so the routing, queueing, fallbacks and metrics
are the same code for both engines.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from .mock_engine import chat_prompt, detokenize, tokenize


class KVLoadFailed(Exception):
    """The decode worker could not use the prefilled KV; the caller retries with a local prefill."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class MockBackend:
    name = "mock"

    def tokenize(self, text: str) -> list[int]:
        return tokenize(text)

    def chat_prompt(self, messages: list[dict]) -> str:
        return chat_prompt(messages)

    async def health(self, session: aiohttp.ClientSession, url: str) -> dict:
        async with session.get(f"{url}/health", timeout=aiohttp.ClientTimeout(total=1.0)) as r:
            return await r.json()

    async def prefix_hit(self, session: aiohttp.ClientSession, url: str, tokens: list[int]) -> int:
        async with session.post(f"{url}/prefix_match", json={"tokens": tokens}, timeout=aiohttp.ClientTimeout(total=2)) as r:
            return int((await r.json())["cached_tokens"])

    async def prefill(self, session: aiohttp.ClientSession, url: str, tokens: list[int], cached: int, timeout: float) -> dict:
        body = {"tokens": tokens, "cached_tokens": cached}
        async with session.post(f"{url}/prefill", json=body, timeout=aiohttp.ClientTimeout(total=timeout, connect=2)) as r:
            if r.status != 200:
                raise RuntimeError(f"HTTP {r.status}")
            return await r.json()

    async def generate(self, session, url: str, tokens: list[int], max_tokens: int, kv: dict | None, sampling: dict, timeout: float) -> AsyncIterator[tuple[str, Any]]:
        body = {"tokens": tokens, "max_tokens": max_tokens, "kv": kv}
        t = aiohttp.ClientTimeout(total=None, connect=2, sock_read=timeout)
        async with session.post(f"{url}/generate", json=body, timeout=t) as r:
            if r.status != 200:
                raise aiohttp.ClientResponseError(r.request_info, (), status=r.status, message=f"HTTP {r.status}")
            n = 0
            async for line in r.content:
                event = json.loads(line)
                if event["type"] == "start":
                    yield "start", event
                elif event["type"] == "token":
                    yield "text", detokenize(event["id"], n == 0)
                    n += 1
                elif event["type"] == "end":
                    yield "end", event["finish_reason"]
                    return
        raise aiohttp.ServerDisconnectedError("the decode worker ended the stream early")


class VllmBackend:
    """vLLM's OpenAI server with NixlConnector: prefill with `do_remote_decode`, decode with the returned params."""

    name = "vllm"

    def __init__(self, model_dir: str, served_model_name: str, pids_file: str | None = None):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        self.model = served_model_name
        self.pids_file = pids_file

    def tokenize(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def chat_prompt(self, messages: list[dict]) -> str:
        return chat_prompt(messages)

    async def health(self, session: aiohttp.ClientSession, url: str) -> dict:
        async with session.get(f"{url}/health", timeout=aiohttp.ClientTimeout(total=1.0)) as r:
            if r.status != 200:
                raise aiohttp.ClientResponseError(r.request_info, (), status=r.status)
        pid = None
        if self.pids_file:
            try:
                with open(self.pids_file, encoding="utf-8") as handle:
                    pid = json.load(handle).get(url)
            except (OSError, ValueError):
                pass
        return {"pid": pid, "device": "cpu" if os.environ.get("VLLM_TARGET_DEVICE", "cpu") == "cpu" else "cuda", "state": "ready"}

    async def prefix_hit(self, session, url: str, tokens: list[int]) -> int:
        return 0  # vLLM reports prefix hits only in aggregate metrics, not per prompt

    async def prefill(self, session: aiohttp.ClientSession, url: str, tokens: list[int], cached: int, timeout: float) -> dict:
        body = {"model": self.model, "prompt": tokens, "max_tokens": 1, "stream": False, "temperature": 0,
                "kv_transfer_params": {"do_remote_decode": True, "do_remote_prefill": False}}
        async with session.post(f"{url}/v1/completions", json=body, timeout=aiohttp.ClientTimeout(total=timeout, connect=2)) as r:
            if r.status != 200:
                raise RuntimeError(f"HTTP {r.status}: {(await r.text())[:200]}")
            data = await r.json()
        params = data.get("kv_transfer_params")
        if not params:
            raise RuntimeError("the prefill engine returned no kv_transfer_params (is the NixlConnector configured?)")
        return {"kv_transfer_params": params, "cached_tokens": 0, "tokens": len(tokens)}

    async def generate(self, session, url: str, tokens: list[int], max_tokens: int, kv: dict | None, sampling: dict, timeout: float) -> AsyncIterator[tuple[str, Any]]:
        body = {"model": self.model, "prompt": tokens, "max_tokens": max_tokens, "stream": True, "stream_options": {"include_usage": True}, **sampling}
        if kv is not None:
            body["kv_transfer_params"] = kv["kv_transfer_params"]
        t = aiohttp.ClientTimeout(total=None, connect=2, sock_read=timeout)
        async with session.post(f"{url}/v1/completions", json=body, timeout=t) as r:
            if r.status != 200:
                detail = (await r.text())[:300]
                if kv is not None:
                    raise KVLoadFailed("decode_rejected", f"HTTP {r.status}: {detail}")
                raise aiohttp.ClientResponseError(r.request_info, (), status=r.status, message=detail)
            yield "start", {"prefill": "remote" if kv is not None else "local", "cached_tokens": 0, "computed_tokens": 0 if kv else len(tokens),
                            "kv": {"status": "ok" if kv else "none", "transport": "nixl"} if kv else {"status": "none"}}
            finish = "length"
            async for raw in r.content:
                line = raw.decode().strip()
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    break
                event = json.loads(line[6:])
                if event.get("usage") and not event.get("choices"):
                    yield "usage", int(event["usage"].get("completion_tokens", 0))
                    continue
                choice = event["choices"][0]
                if choice.get("text"):
                    yield "text", choice["text"]
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
            yield "end", finish


async def gather_engine_metrics(session: aiohttp.ClientSession, workers) -> str:
    """Every vLLM engine's `vllm:*` series with a `worker_id` label, so one scrape of the frontend covers all."""

    async def one(w) -> str:
        try:
            async with session.get(f"{w.spec.url}/metrics", timeout=aiohttp.ClientTimeout(total=1.5)) as r:
                text = await r.text()
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
            return ""
        out = []
        for line in text.splitlines():
            if not line.startswith("vllm:"):
                continue
            name, sep, rest = line.partition("{")
            if sep:
                out.append(f'{name}{{worker_id="{w.spec.worker_id}",{rest}')
            else:
                metric, _, value = line.partition(" ")
                out.append(f'{metric}{{worker_id="{w.spec.worker_id}"}} {value}')
        return "\n".join(out)

    parts = await asyncio.gather(*(one(w) for w in workers))
    lines = [line for p in parts for line in p.splitlines() if line]
    lines.sort(key=lambda line: line.split("{", 1)[0])  # a metric's samples together, as the text format wants
    return "\n".join(lines) + "\n" if lines else ""
