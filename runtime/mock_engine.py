"""The mock engine: a timing model, paged-KV block accounting with prefix caching, and deterministic output.

It stands in for vLLM where there is no GPU and no model, behind the same worker interface. Its KV cache
(runtime/mock_kv.py) is real bytes of the size a real model would produce; the output is seeded by a keyed checksum
of that KV, so a decode worker that received wrong KV gives a different answer, as a real model would.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from .mock_kv import VOCAB, KVLayout, block_hashes, combine  # noqa: F401 - KVLayout, combine: their old home

log = logging.getLogger("disagg.engine")

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


def detokenize(token_id: int, first: bool) -> str:
    word = _WORDS[token_id % len(_WORDS)]
    return word if first else " " + word


def step_distribution(intended: int, counts: dict[int, int], presence: float = 0.0, frequency: float = 0.0) -> list[tuple[int, float]]:
    """The mock model's log-probabilities over its words at one output step, best first (documented in the README).

    The word the KV checksum picks (`intended`) has logit 0 and the word k places after it in `_WORDS` has -k·ln 2, so
    unpenalised the picked word has logprob ≈ -0.693 (probability ½), the next ≈ -1.386, ... A penalty lowers the logit of
    each word already in the output, as vLLM applies them: `presence_penalty` once, `frequency_penalty` per occurrence.
    Decoding is greedy over these: the first entry is the word emitted."""
    n = len(_WORDS)
    logits = [(-((j - intended) % n) * math.log(2) - (presence if counts.get(j) else 0.0) - frequency * counts.get(j, 0), (j - intended) % n, j)
              for j in range(n)]
    top = max(x[0] for x in logits)
    norm = top + math.log(sum(math.exp(x[0] - top) for x in logits))
    return [(j, logit - norm) for logit, _, j in sorted(logits, key=lambda x: (-x[0], x[1]))]


def output_tokens(seed: int, n: int) -> list[int]:
    """Deterministic output token ids seeded by the KV checksum (so wrong KV means different output)."""
    out = []
    state = (seed & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")
    for i in range(n):
        state = hashlib.blake2s(state + i.to_bytes(4, "little"), digest_size=8).digest()
        out.append(int.from_bytes(state[:4], "little") % len(_WORDS))
    return out


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

    @property
    def free(self) -> bool:
        return not (self.prefill_base or self.prefill_per_token or self.decode_step or self.decode_per_seq)


class BlockManager:
    """Paged KV accounting: a fixed pool of blocks of `block_size` tokens, and an LRU cache of full prompt blocks.

    The cache is keyed by chained block hashes that start from the request's `cache_salt` (vLLM's semantics:
    requests with different salts never share a prefix, so a hit says nothing about another tenant's prompt)."""

    def __init__(self, num_blocks: int, block_size: int, prefix_caching: bool, layout: KVLayout):
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.prefix_caching = prefix_caching
        self.layout = layout
        self.used = 0  # blocks held by running sequences
        self.cache: OrderedDict[bytes, int] = OrderedDict()  # block hash -> checksum of the KV up to and including it

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def block_hashes(self, tokens, salt: str = "") -> list[bytes]:
        """Chained hashes of the prompt's full blocks (a block's hash covers the salt and everything before it)."""
        return block_hashes(tokens, self.block_size, salt)

    def match_prefix(self, tokens, salt: str = "", hashes: list[bytes] | None = None) -> tuple[int, int]:
        """(cached prompt tokens, checksum of their KV). At least one token is always left to compute. `hashes`: the
        prompt's block hashes when the caller has them already (it passes the same to `remember`)."""
        if not self.prefix_caching:
            return 0, 0
        hashes = self.block_hashes(tokens, salt) if hashes is None else hashes
        n = 0
        for h in hashes:
            if h not in self.cache:
                break
            n += 1
        if n * self.block_size >= len(tokens):  # keep the last token to compute, as vLLM does
            n -= 1
        if n <= 0:
            return 0, 0
        return n * self.block_size, self.cache[hashes[n - 1]]

    def remember(self, tokens, salt: str = "", hashes: list[bytes] | None = None) -> None:
        """Put a finished prompt's full blocks in the cache (evicting least recently used ones)."""
        if not self.prefix_caching:
            return
        hashes = self.block_hashes(tokens, salt) if hashes is None else hashes
        sums = self.layout.prefix_checksums(tokens, [(i + 1) * self.block_size for i in range(len(hashes))])
        for h, c in zip(hashes, sums):
            self.cache[h] = c
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


class Sequence:
    __slots__ = ("request_id", "tokens", "max_tokens", "seed", "uncached", "emit", "finished", "blocks", "produced", "ids", "done")

    def __init__(self, request_id: str, tokens: list[int], max_tokens: int, seed: int, uncached: int):
        self.request_id, self.tokens, self.max_tokens, self.seed, self.uncached = request_id, tokens, max_tokens, seed, uncached
        self.emit: Callable[[int], None] | None = None  # set by `run`: called by the loop with each token (no task wakes up per token)
        self.finished: asyncio.Future | None = None
        self.blocks = 0
        self.produced = 0
        self.ids: list[int] = []
        self.done = False  # finished or cancelled: the loop drops it at its next safe point


class EngineStopped(Exception):
    pass


class DecodeEngine:
    """Continuous batching in one asyncio task: local prefills first, one at a time, then a decode step for all.

    The loop owns `waiting` and `running`: `cancel` only marks a sequence done and frees nothing itself, so a
    cancellation arriving while the loop awaits a step cannot pull a sequence from under it (the race that killed
    the loop when a frontend crashed). The loop is supervised: an exception in it is logged, every sequence it held
    ends with an error, and it starts again; `healthy` says whether it runs and makes progress when work waits."""

    STALL_SECONDS = 10.0  # work waiting and no step for this long: unhealthy (the supervisor restarts the worker)

    def __init__(self, timing: Timing, blocks: BlockManager):
        self.timing = timing
        self.blocks = blocks
        self.waiting: list[Sequence] = []
        self.running: list[Sequence] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.busy_seconds = 0.0  # time spent computing (for utilisation)
        self.steps = 0
        self.restarts = 0
        self.last_progress = time.monotonic()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._supervise())

    def healthy(self) -> tuple[bool, str]:
        if self._task is None or self._task.done():
            return False, "engine loop not running"
        if (self.waiting or self.running) and time.monotonic() - self.last_progress > self.STALL_SECONDS:
            return False, f"no engine step for {time.monotonic() - self.last_progress:.0f} s with {len(self.waiting) + len(self.running)} sequences"
        return True, "ok"

    async def run(self, seq: Sequence, emit) -> None:
        """Decode `seq`, handing each token to `emit(token)` from the loop itself; returns when it is done (raises
        EngineStopped if the loop failed). Cancelling the caller stops the sequence."""
        seq.emit = emit
        seq.finished = asyncio.get_running_loop().create_future()
        self.waiting.append(seq)
        self._wake.set()
        try:
            await seq.finished
        finally:
            seq.done = True
            self._wake.set()

    async def _busy(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        t0 = time.perf_counter()
        await asyncio.sleep(seconds)
        self.busy_seconds += time.perf_counter() - t0

    async def _supervise(self) -> None:
        while True:
            try:
                await self._loop()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - logged, its sequences told, the loop started again
                log.exception("engine loop failed; restarting it")
                self.restarts += 1
                for seq in self.waiting + self.running:
                    if not seq.done and not seq.finished.done():
                        seq.finished.set_exception(EngineStopped("the engine loop failed"))
                    self.blocks.free(seq.blocks)
                self.waiting, self.running = [], []

    def _drop_done(self) -> None:
        if any(s.done for s in self.running):
            for s in self.running:
                if s.done:
                    self.blocks.free(s.blocks)
            self.running = [s for s in self.running if not s.done]
        if any(s.done for s in self.waiting):
            self.waiting = [s for s in self.waiting if not s.done]

    async def _loop(self) -> None:
        while True:
            self._drop_done()
            if not self.waiting and not self.running:
                self._wake.clear()
                self.last_progress = time.monotonic()
                await self._wake.wait()
                continue
            admitted = next((s for s in self.waiting if self.blocks.can_allocate(len(s.tokens) + s.max_tokens)), None)
            if admitted is not None:
                self.waiting.remove(admitted)
                admitted.blocks = self.blocks.allocate(len(admitted.tokens) + admitted.max_tokens)
                self.running.append(admitted)
                if admitted.uncached:
                    await self._busy(self.timing.prefill_seconds(admitted.uncached))
                self.last_progress = time.monotonic()
                continue
            if not self.running:
                self._wake.clear()
                await self._wake.wait()  # waiting for blocks that only a finishing sequence can free
                continue
            await self._busy(self.timing.decode_step_seconds(len(self.running)))
            self.steps += 1
            self.last_progress = time.monotonic()
            for seq in self.running:
                if seq.done:
                    continue
                if not seq.ids:
                    seq.ids = output_tokens(seq.seed, seq.max_tokens)
                token = seq.ids[seq.produced]
                seq.produced += 1
                # `finished` may already be cancelled with `seq.done` still unset: a caller's cancel cancels the future
                # at once, and its `finally` (seq.done = True) runs only when that task next gets a turn.
                try:
                    seq.emit(token)
                except Exception as exc:  # noqa: BLE001 - its reader is gone: drop the sequence (its caller hears why), not the loop
                    seq.done = True
                    if not seq.finished.done():
                        seq.finished.set_exception(exc)
                    continue
                if seq.produced >= seq.max_tokens:
                    seq.done = True
                    if not seq.finished.done():
                        seq.finished.set_result(None)
