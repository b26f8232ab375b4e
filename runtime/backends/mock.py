"""The mock workers' backend: requests over the run's authenticated channel (one connection per worker)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from ..channel import Channel, ChannelError, RemoteError, pack_tokens
from ..mock_engine import VOCAB, chat_prompt, detokenize, step_distribution, tokenize
from . import WorkerFailed


class MockBackend:
    name = "mock"
    vocab_size = VOCAB

    def __init__(self, secret: bytes):
        self.secret = secret
        self.channels: dict[str, Channel] = {}

    def _ch(self, worker) -> Channel:
        spec = worker.spec
        ch = self.channels.get(spec.worker_id)
        if ch is None:
            ch = self.channels[spec.worker_id] = Channel(spec.host, spec.port, self.secret, spec.worker_id)
        return ch

    def tokenize(self, text: str) -> list[int]:
        return tokenize(text)

    def chat_prompt(self, messages: list[dict]) -> str:
        return chat_prompt(messages)

    def detokenize(self, ids: list[int], first: bool) -> str:
        return "".join(detokenize(t, first and i == 0) for i, t in enumerate(ids))

    async def _call(self, worker, op: str, timeout: float, body: bytes = b"", **fields) -> tuple[dict, bytes]:
        try:
            return await self._ch(worker).call(op, timeout=timeout, body=body, **fields)
        except ChannelError as exc:
            raise WorkerFailed(exc.reason, str(exc)) from None
        except RemoteError as exc:
            raise WorkerFailed(exc.reason, exc.detail) from None
        except asyncio.TimeoutError:
            raise WorkerFailed("timeout", f"{worker.spec.worker_id}: no answer to {op} within {timeout:g} s") from None

    async def health(self, worker) -> dict:
        return (await self._call(worker, "health", 1.0))[0]

    async def prove(self, spec) -> dict:
        """A worker registered at a new address proves it is `spec.worker_id` there: a handshake bound to that id and
        address, then `health`, on a connection of its own. Raises WorkerFailed."""
        ch = Channel(spec.host, spec.port, self.secret, spec.worker_id)
        try:
            async with asyncio.timeout(1.0):  # connect, handshake and answer: an address that accepts and says nothing
                return (await ch.call("health"))[0]
        except ChannelError as exc:
            raise WorkerFailed(exc.reason, str(exc)) from None
        except RemoteError as exc:
            raise WorkerFailed(exc.reason, exc.detail) from None
        except asyncio.TimeoutError:
            raise WorkerFailed("timeout", f"{spec.worker_id} at {spec.host}:{spec.port}: no answer within 1 s") from None
        finally:
            ch.close()

    async def metrics(self, worker) -> str:
        return (await self._call(worker, "metrics", 1.5))[1].decode()

    async def prefix_hit(self, worker, tokens: list[int], salt: str) -> int:
        return int((await self._call(worker, "prefix_match", 2.0, pack_tokens(tokens), ntok=len(tokens), cache_salt=salt))[0]["cached_tokens"])

    async def prefill(self, worker, tokens: list[int], cached: int, request: str, timeout: float) -> Any:
        header, metadata = await self._call(worker, "prefill", timeout, pack_tokens(tokens), ntok=len(tokens), cached_tokens=cached, request=request)
        return header["handle"], metadata

    async def generate(self, worker, tokens: list[int], max_tokens: int, kv: Any, sampling: dict, request: str, timeout: float) -> AsyncIterator[tuple[str, Any]]:
        """Penalties and logprobs are the frontend's part of the mock model (mock_engine.step_distribution): the worker
        picks each word from the KV, this applies the penalties to it and reports the logprobs before its text."""
        sampling = dict(sampling)
        shaper = _Shaper(sampling.pop("presence_penalty", 0.0), sampling.pop("frequency_penalty", 0.0), sampling.pop("logprobs", None))
        async for kind, value in self._generate(worker, tokens, max_tokens, kv, sampling, request, timeout):
            if kind == "tokens" and shaper.active:
                value, entries = shaper.shape(value)
                if entries is not None:
                    yield "logprobs", entries
            yield kind, value

    async def _generate(self, worker, tokens: list[int], max_tokens: int, kv: Any, sampling: dict, request: str, timeout: float) -> AsyncIterator[tuple[str, Any]]:
        handle, metadata = kv if kv is not None else (None, b"")
        fields = {"ntok": len(tokens), "max_tokens": max_tokens, "kv": handle, "request": request, "kv_timeout": 5.0, **sampling}
        try:
            async with aclosing(self._ch(worker).stream_batches("generate", body=pack_tokens(tokens) + metadata, idle_timeout=timeout, **fields)) as batches:
                async for batch in batches:
                    pending: list[int] = []  # consecutive token answers become one event: one write to the client
                    for header, _ in batch:
                        if "tokens" in header:
                            pending.extend(header["tokens"])
                            continue
                        if pending:
                            yield "tokens", pending
                            pending = []
                        if header.get("event") == "start":
                            yield "start", header
                        elif header.get("end"):
                            yield "end", header.get("finish_reason", "length")
                            return
                    if pending:
                        yield "tokens", pending
        except ChannelError as exc:
            raise WorkerFailed(exc.reason, str(exc)) from None
        except RemoteError as exc:
            raise WorkerFailed(exc.reason, exc.detail) from None
        raise WorkerFailed("stream_ended", f"{worker.spec.worker_id} ended the stream early")

    async def release_kv(self, worker, kv: Any) -> None:
        handle = kv[0] if isinstance(kv, tuple) else None
        if not isinstance(handle, dict):
            return
        try:
            await self._call(worker, "kv_release", 2.0, handle=handle)
        except WorkerFailed:
            pass  # gone or unreachable: its KV ends with the worker, or at the TTL

    def abort(self, worker) -> None:
        """Drop the connection to a worker that stopped answering: its requests fail now, not at their timeouts."""
        ch = self.channels.pop(worker.spec.worker_id, None)
        if ch is not None:
            ch.close()

    async def faults(self, worker, body: dict) -> dict:
        return (await self._call(worker, "faults", 2.0, **body))[0]

    def close(self) -> None:
        for ch in self.channels.values():
            ch.close()


class _Shaper:
    """One request's penalties and logprobs over the words the mock worker picks."""

    def __init__(self, presence: float, frequency: float, top: int | None):
        self.presence, self.frequency, self.top = presence, frequency, top
        self.active = bool(presence or frequency or top is not None)
        self.counts: dict[int, int] = {}
        self.first = True

    def shape(self, ids: list[int]) -> tuple[list[int], list | None]:
        out, entries = [], []
        for intended in ids:
            dist = step_distribution(intended, self.counts, self.presence, self.frequency)
            word, logprob = dist[0]
            out.append(word)
            self.counts[word] = self.counts.get(word, 0) + 1
            if self.top is not None:
                alts = [(detokenize(j, self.first), lp) for j, lp in dist[: self.top]]
                entries.append((detokenize(word, self.first), logprob, alts))
            self.first = False
        return out, entries if self.top is not None else None
