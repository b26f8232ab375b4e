"""How the frontend talks to its workers, per engine: the mock workers over the run's internal channel, or vLLM's
OpenAI server with the NixlConnector's `kv_transfer_params` handshake.

Both implement `Backend`, so routing, queueing, fallbacks, retries and metrics are one code path for both engines.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol


class KVLoadFailed(Exception):
    """The decode worker could not use the prefilled KV before sending anything; the caller prefills locally."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class WorkerFailed(Exception):
    """A worker could not be reached or failed the request; `reason` is a metric label."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class Backend(Protocol):
    name: str
    vocab_size: int

    def tokenize(self, text: str) -> list[int]: ...

    def chat_prompt(self, messages: list[dict]) -> str: ...

    def detokenize(self, ids: list[int], first: bool) -> str: ...

    async def health(self, worker) -> dict: ...

    async def metrics(self, worker) -> str:
        """The worker's engine series, labelled with its worker id, for the frontend's one scrape target."""
        ...

    async def prefix_hit(self, worker, tokens: list[int], salt: str) -> int: ...

    async def prefill(self, worker, tokens: list[int], cached: int, request: str, timeout: float) -> Any:
        """Remote prefill; returns an opaque KV handle for `generate`. Raises WorkerFailed."""
        ...

    def generate(self, worker, tokens: list[int], max_tokens: int, kv: Any, sampling: dict, request: str, timeout: float) -> AsyncIterator[tuple[str, Any]]:
        """Decode: yields ("start", info), ("tokens", [ids] or str), ("usage", n)..., ("end", finish_reason).
        Raises KVLoadFailed (nothing sent yet: prefill locally instead) or WorkerFailed."""
        ...

    async def release_kv(self, worker, kv: Any) -> None:
        """Tell the prefill worker that the KV of `prefill` will not be read (its request ended first). Never raises."""
        ...

    async def faults(self, worker, body: dict) -> dict: ...

    def close(self) -> None: ...
