"""vLLM's OpenAI server with the NixlConnector: prefill with `do_remote_decode`, decode with the returned params.

Each engine is a `python -m vllm.entrypoints.openai.api_server` started by the supervisor (vllm_engine.py) with
`VLLM_API_KEY` derived from the run's secret, so its `/v1` routes answer only this frontend.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from ..mock_engine import chat_prompt as plain_chat_prompt
from . import KVLoadFailed, WorkerFailed
from .chat_template import load_chat_template

NET_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


class VllmBackend:
    """vLLM's OpenAI server with NixlConnector: prefill with `do_remote_decode`, decode with the returned params."""

    name = "vllm"

    def __init__(self, model_dir: str, served_model_name: str, api_key: str, pids_file: str | None = None):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        self.vocab_size = self.tokenizer.get_vocab_size()
        self.template = load_chat_template(model_dir)  # None: the model has none (see chat_prompt)
        self.model = served_model_name
        self.pids_file = pids_file
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.session: aiohttp.ClientSession | None = None

    def _s(self) -> aiohttp.ClientSession:
        if self.session is None:
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), headers=self.headers)
        return self.session

    def detokenize(self, ids, first: bool) -> str:
        return ids if isinstance(ids, str) else self.tokenizer.decode(ids)

    def close(self) -> None:
        if self.session is not None:
            asyncio.get_event_loop().create_task(self.session.close())

    async def release_kv(self, worker, kv: Any) -> None:
        pass  # vLLM's prefill engine frees unread KV itself (VLLM_NIXL_ABORT_REQUEST_TIMEOUT)

    def abort(self, worker) -> None:
        pass  # each request has its own HTTP connection, ended by its own timeout

    async def faults(self, worker, body: dict) -> dict:
        return {"error": "fault injection needs the mock engine"}

    async def metrics(self, worker) -> str:
        return await engine_metrics(self._s(), worker)

    def tokenize(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def chat_prompt(self, messages: list[dict]) -> str:
        """The model's chat template (tokenizer_config.json or chat_template.jinja), as `vllm serve` applies it; a model
        without one gets the plain `role: content` template (said once at start-up)."""
        return self.template(messages) if self.template is not None else plain_chat_prompt(messages)

    async def health(self, worker) -> dict:
        url = worker.spec.url
        try:
            async with self._s().get(f"{url}/health", timeout=aiohttp.ClientTimeout(total=1.0)) as r:
                if r.status != 200:
                    raise WorkerFailed("unhealthy", f"HTTP {r.status}")
        except NET_ERRORS as exc:
            raise WorkerFailed("connect", type(exc).__name__) from None
        pid = None
        if self.pids_file:
            try:
                with open(self.pids_file, encoding="utf-8") as handle:
                    pid = json.load(handle).get(url)
            except (OSError, ValueError):
                pass
        return {"pid": pid, "device": "cpu" if os.environ.get("VLLM_TARGET_DEVICE", "cpu") == "cpu" else "cuda", "state": "ready"}

    async def prefix_hit(self, worker, tokens: list[int], salt: str) -> int:
        return 0  # vLLM reports prefix hits only in aggregate metrics, not per prompt

    async def prefill(self, worker, tokens: list[int], cached: int, request: str, timeout: float) -> Any:
        body = {"model": self.model, "prompt": tokens, "max_tokens": 1, "stream": False, "temperature": 0,
                "kv_transfer_params": {"do_remote_decode": True, "do_remote_prefill": False}}
        try:
            async with self._s().post(f"{worker.spec.url}/v1/completions", json=body, timeout=aiohttp.ClientTimeout(total=timeout, connect=2)) as r:
                if r.status != 200:
                    raise WorkerFailed("prefill_failed", f"HTTP {r.status}: {(await r.text())[:200]}")
                data = await r.json()
        except NET_ERRORS as exc:
            raise WorkerFailed("connect", type(exc).__name__) from None
        params = data.get("kv_transfer_params")
        if not params:
            raise WorkerFailed("prefill_failed", "the prefill engine returned no kv_transfer_params (is the NixlConnector configured?)")
        return {"kv_transfer_params": params, "cached_tokens": 0, "tokens": len(tokens)}

    async def generate(self, worker, tokens: list[int], max_tokens: int, kv: Any, sampling: dict, request: str, timeout: float) -> AsyncIterator[tuple[str, Any]]:
        try:
            async for item in self._generate(worker.spec.url, tokens, max_tokens, kv, sampling, timeout):
                yield item
        except NET_ERRORS as exc:
            raise WorkerFailed("connect", type(exc).__name__) from None

    async def _generate(self, url: str, tokens: list[int], max_tokens: int, kv: Any, sampling: dict, timeout: float) -> AsyncIterator[tuple[str, Any]]:
        body = {"model": self.model, "prompt": tokens, "max_tokens": max_tokens, "stream": True, "stream_options": {"include_usage": True}, **sampling}
        if kv is not None:
            body["kv_transfer_params"] = kv["kv_transfer_params"]
        t = aiohttp.ClientTimeout(total=None, connect=2, sock_read=timeout)
        async with self._s().post(f"{url}/v1/completions", json=body, timeout=t) as r:
            if r.status != 200:
                detail = (await r.text())[:300]
                if kv is not None:
                    raise KVLoadFailed("decode_rejected", f"HTTP {r.status}: {detail}")
                raise WorkerFailed("decode_failed", f"HTTP {r.status}: {detail}")
            start = {"prefill": "remote" if kv is not None else "local", "cached_tokens": 0, "computed_tokens": 0 if kv else len(tokens),
                     "kv": {"status": "ok", "transport": "nixl"} if kv else {"status": "none"}}
            finish = "length"
            async for raw in r.content:
                line = raw.decode().strip()
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    break
                event = json.loads(line[6:])
                if "error" in event:  # vLLM ends a stream it cannot serve with an error object instead of choices
                    err = event["error"] if isinstance(event["error"], dict) else {"message": event["error"]}
                    detail = f"vLLM: {err.get('message', err)}"[:300]
                    if start is not None and kv is not None:  # nothing sent yet: the router prefills locally instead
                        raise KVLoadFailed("decode_rejected", detail)
                    raise WorkerFailed("decode_failed", detail)
                if start is not None:  # said once vLLM has answered, so an error before the first token is a refusal
                    yield "start", start
                    start = None
                if event.get("usage") and not event.get("choices"):
                    yield "usage", int(event["usage"].get("completion_tokens", 0))
                    continue
                choice = event["choices"][0]
                if choice.get("logprobs"):  # asked for with sampling["logprobs"]: vLLM's own values, passed through
                    yield "logprobs", logprob_entries(choice["logprobs"])
                if choice.get("text"):
                    yield "tokens", choice["text"]
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
            if start is not None:
                yield "start", start
            yield "end", finish


def logprob_entries(lp: dict) -> list:
    """vLLM's /v1/completions logprobs of a chunk as (token, logprob, [(alternative, logprob), ...]) per token."""
    tops = lp.get("top_logprobs") or []
    return [(tok, float(val) if val is not None else float("-inf"), list((tops[i] or {}).items()) if i < len(tops) else [])
            for i, (tok, val) in enumerate(zip(lp.get("tokens") or [], lp.get("token_logprobs") or []))]


async def engine_metrics(session: aiohttp.ClientSession, w) -> str:
    """An engine's `vllm:*` series with a `worker_id` label, so one scrape of the frontend covers all."""
    try:
        async with session.get(f"{w.spec.url}/metrics", timeout=aiohttp.ClientTimeout(total=1.5)) as r:
            text = await r.text()
    except NET_ERRORS:
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
    return "\n".join(out) + "\n" if out else ""
