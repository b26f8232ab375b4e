"""The mock engine: a timing model, paged-KV block accounting with prefix caching, and deterministic KV and output.

It stands in for vLLM where there is no GPU and no model, behind the same worker interface. Its KV cache is real
bytes of the size a real model would produce (tokens × layers × 2 × KV heads × head size × dtype), filled from the
prompt so that the output (seeded by the KV's checksum) changes whenever the KV does: a decode worker that received
the wrong KV gives a different answer, exactly as a real model would.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import zlib
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from .plan import ModelShape

# A small vocabulary for deterministic output text.
_WORDS = (
    "the prefill worker sends its cache to the decode worker which answers every token of the request while the "
    "router keeps watch over queues blocks and transfers in a quiet data center far from any user"
).split()


def tokenize(text: str) -> list[int]:
    """Byte-level tokens: needs no download, and counts the way a byte-level BPE does before merges."""
    return list(text.encode("utf-8"))


def chat_prompt(messages: list[dict]) -> str:
    """A plain chat template: one `role: content` line per message, then the assistant's turn."""
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"


@dataclass(frozen=True)
class Timing:
    """Costs of the mock model, in seconds. Prefill is linear in uncached tokens; a decode step grows with the batch."""

    prefill_base: float = 0.002
    prefill_per_token: float = 0.00002  # 20 µs/token: 200 tokens ≈ 6 ms
    decode_step: float = 0.004
    decode_per_seq: float = 0.0002

    def prefill_seconds(self, tokens: int) -> float:
        return 0.0 if tokens <= 0 else self.prefill_base + self.prefill_per_token * tokens

    def decode_step_seconds(self, batch: int) -> float:
        return self.decode_step + self.decode_per_seq * batch

    @classmethod
    def zero(cls) -> "Timing":
        return cls(0.0, 0.0, 0.0, 0.0)


def kv_for_tokens(tokens: list[int], start: int, shape: ModelShape) -> np.ndarray:
    """The KV bytes of tokens[start:], deterministic in every token and its position."""
    per = shape.kv_bytes_per_token
    part = np.asarray(tokens[start:], dtype=np.uint32)
    if part.size == 0:
        return np.zeros(0, dtype=np.uint8)
    pos = np.arange(start, start + part.size, dtype=np.uint32)
    seed = (part * np.uint32(2654435761) ^ (pos * np.uint32(40503))).astype(np.uint32)
    lanes = np.arange(per, dtype=np.uint32)
    # One row per token: a cheap mix of token, position and lane (not random, but different for any change).
    rows = (seed[:, None] + lanes[None, :] * np.uint32(97)) ^ (seed[:, None] >> np.uint32(7))
    return (rows & np.uint32(0xFF)).astype(np.uint8).reshape(-1)


def kv_checksum(data, start: int = 0) -> int:
    """CRC-32 that chains: checksum(b, checksum(a)) == checksum(a + b)."""
    return zlib.crc32(memoryview(data).cast("B"), start) & 0xFFFFFFFF


def output_tokens(kv_crc: int, n: int) -> list[int]:
    """Deterministic output token ids seeded by the KV checksum (so wrong KV means different output)."""
    out = []
    state = kv_crc.to_bytes(4, "little")
    for i in range(n):
        state = hashlib.blake2s(state + i.to_bytes(4, "little"), digest_size=8).digest()
        out.append(int.from_bytes(state[:4], "little") % len(_WORDS))
    return out


def detokenize(token_id: int, first: bool) -> str:
    word = _WORDS[token_id % len(_WORDS)]
    return word if first else " " + word


class BlockManager:
    """Paged KV accounting: a fixed pool of blocks of `block_size` tokens, and an LRU cache of full prompt blocks."""

    def __init__(self, num_blocks: int, block_size: int, prefix_caching: bool):
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.prefix_caching = prefix_caching
        self.used = 0  # blocks held by running sequences
        self.cache: OrderedDict[bytes, int] = OrderedDict()  # block hash -> crc of the KV up to and including it
        self.hits = 0  # prompt tokens served from the cache
        self.queries = 0  # prompt tokens looked up

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def block_hashes(self, tokens: list[int]) -> list[bytes]:
        """Chained hashes of the prompt's full blocks (a block's hash covers everything before it)."""
        hashes, h = [], b""
        for i in range(len(tokens) // self.block_size):
            chunk = bytes(t & 0xFF for t in tokens[i * self.block_size : (i + 1) * self.block_size])
            h = hashlib.blake2s(h + chunk, digest_size=16).digest()
            hashes.append(h)
        return hashes

    def match_prefix(self, tokens: list[int]) -> tuple[int, int]:
        """(cached prompt tokens, crc of their KV). At least one token is always left to compute."""
        if not self.prefix_caching:
            return 0, 0
        cached, crc = 0, 0
        for h in self.block_hashes(tokens):
            if h not in self.cache:
                break
            crc = self.cache[h]
            cached += self.block_size
        if cached >= len(tokens):  # keep the last token to compute, as vLLM does
            cached -= self.block_size
            if cached > 0:
                crc = self.cache[self.block_hashes(tokens)[cached // self.block_size - 1]]
            else:
                crc = 0
        return cached, crc

    def remember(self, tokens: list[int], suffix_kv: np.ndarray, cached: int, prefix_crc: int, shape: ModelShape) -> None:
        """Put a finished prompt's full blocks in the cache (evicting least recently used ones).

        `suffix_kv` is the KV of tokens[cached:]; the blocks before `cached` are already in the cache.
        """
        if not self.prefix_caching:
            return
        per_block = self.block_size * shape.kv_bytes_per_token
        crc = prefix_crc
        first = cached // self.block_size
        for i, h in enumerate(self.block_hashes(tokens)):
            if i >= first:
                j = i - first
                crc = kv_checksum(suffix_kv[j * per_block : (j + 1) * per_block], crc)
                self.cache[h] = crc
            self.cache.move_to_end(h)
        while len(self.cache) > max(self.num_blocks - self.used, 0):
            self.cache.popitem(last=False)

    def can_allocate(self, tokens: int) -> bool:
        return self.used + self.blocks_for(tokens) <= self.num_blocks

    def allocate(self, tokens: int) -> int:
        n = self.blocks_for(tokens)
        self.used += n
        return n

    def free(self, blocks: int) -> None:
        self.used = max(0, self.used - blocks)

    @property
    def usage(self) -> float:
        return self.used / self.num_blocks if self.num_blocks else 0.0


@dataclass
class Sequence:
    request_id: str
    tokens: list[int]
    max_tokens: int
    kv_crc: int  # checksum of the whole prompt's KV: seeds the output
    uncached: int  # prompt tokens this worker must prefill itself (0 when the KV came from a prefill worker)
    queue: asyncio.Queue
    blocks: int = 0
    produced: int = 0


class DecodeEngine:
    """Continuous batching in one asyncio task: local prefills first, one at a time, then a decode step for all."""

    def __init__(self, shape: ModelShape, timing: Timing, blocks: BlockManager):
        self.shape = shape
        self.timing = timing
        self.blocks = blocks
        self.waiting: list[Sequence] = []
        self.running: list[Sequence] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.busy_seconds = 0.0  # time spent computing (for utilisation)
        self.local_prefill_tokens = 0
        self.steps = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def generate(self, seq: Sequence) -> AsyncIterator[int]:
        self.waiting.append(seq)
        self._wake.set()
        while True:
            item = await seq.queue.get()
            if item is None:
                return
            yield item

    async def _busy(self, seconds: float) -> None:
        t0 = time.perf_counter()
        await asyncio.sleep(seconds)
        self.busy_seconds += time.perf_counter() - t0 if seconds > 0 else 0.0

    async def _loop(self) -> None:
        while True:
            if not self.waiting and not self.running:
                self._wake.clear()
                await self._wake.wait()
            admitted = None
            for seq in self.waiting:
                if self.blocks.can_allocate(len(seq.tokens) + seq.max_tokens):
                    admitted = seq
                    break
            if admitted is not None:
                self.waiting.remove(admitted)
                admitted.blocks = self.blocks.allocate(len(admitted.tokens) + admitted.max_tokens)
                if admitted.uncached:
                    self.local_prefill_tokens += admitted.uncached
                    await self._busy(self.timing.prefill_seconds(admitted.uncached))
                self.running.append(admitted)
                continue
            if not self.running:
                await asyncio.sleep(0.001)  # waiting for blocks that only a finishing sequence can free
                continue
            batch = list(self.running)
            await self._busy(self.timing.decode_step_seconds(len(batch)))
            self.steps += 1
            for seq in batch:
                if seq.produced == 0:
                    ids = output_tokens(seq.kv_crc, seq.max_tokens)
                    seq._ids = ids  # type: ignore[attr-defined]
                seq.queue.put_nowait(seq._ids[seq.produced])  # type: ignore[attr-defined]
                seq.produced += 1
                if seq.produced >= seq.max_tokens:
                    self.running.remove(seq)
                    self.blocks.free(seq.blocks)
                    seq.queue.put_nowait(None)

    def cancel(self, seq: Sequence) -> None:
        """Drop a sequence whose client went away."""
        if seq in self.waiting:
            self.waiting.remove(seq)
        elif seq in self.running:
            self.running.remove(seq)
            self.blocks.free(seq.blocks)
