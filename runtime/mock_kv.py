"""The mock engine's KV cache: the bytes a prompt's KV is made of, their keyed checksum, and the prompt's block hashes.

The KV is real bytes of the size a real model would produce (tokens × layers × 2 × KV heads × head size × dtype, each
token's row padded to 8 bytes), so moving it costs what moving real KV costs. The output is seeded by the checksum,
so a decode worker that received wrong KV gives a different answer, as a real model would.

KV is made cheaply and in bounded memory: a token's row is one of 256 precomputed pages (by token byte) with its
position added to the first word, gathered straight into the prefill worker's KV arena; no temporary copies. The
checksum is keyed by the run's secret, `Σ_p w(p)·dot(row_p, key)` over positions p (wrapping 64-bit arithmetic;
`key` is a secret word per column, `w(p) = a·p + b` with secret a even and b odd, so every w(p) is odd): additive
over positions (a prefix's checksum plus the suffix's is the whole prompt's, which prefix caching needs), computable
from the tokens alone without making the bytes (the prefill side and local prefills), and not forgeable without the
key (a WRITE into a KV region cannot keep it: a word changed by d moves it by d·key·w(p), never 0 mod 2^64 as both
are odd; two rows or two words swapped move it too). The decode side checks received bytes in one pass over them.
"""

from __future__ import annotations

import hashlib

import numpy as np

from .plan import ModelShape

VOCAB = 256  # byte-level tokens
_U64 = np.uint64


def token_array(tokens) -> np.ndarray:
    """Token ids as an integer array: an array (the packed ids a worker receives) as it is, a list converted once."""
    return tokens if isinstance(tokens, np.ndarray) else np.asarray(tokens, dtype=np.intp)


class KVLayout:
    """How a prompt's KV looks in memory, and its keyed checksum. The same on every worker of a run."""

    def __init__(self, shape: ModelShape, key: bytes):
        self.row_bytes = -(-shape.kv_bytes_per_token // 8) * 8
        self.words = self.row_bytes // 8
        rng = np.random.default_rng(0x6B76)  # the pages are the model: the same in every process
        self.pages = rng.integers(0, 2**63, size=(VOCAB, self.words), dtype=np.uint64)
        self.pages[:, 0] &= _U64(0xFFFFFFFF)  # room to add a position without wrapping
        krng = np.random.default_rng(list(hashlib.sha256(b"kv-checksum" + key).digest()))
        self.key = krng.integers(0, 2**63, size=self.words, dtype=np.uint64) | _U64(1)
        a, b = krng.integers(0, 2**63, size=2, dtype=np.uint64)
        self.w_slope, self.w_base = a << _U64(1), b | _U64(1)  # w(p) = slope·p + base: odd at every position
        with np.errstate(over="ignore"):
            self.page_dot = (self.pages * self.key).sum(axis=1, dtype=np.uint64)

    def nbytes(self, tokens: int) -> int:
        return tokens * self.row_bytes

    def _terms(self, tokens, start: int, end: int | None) -> np.ndarray:
        """Each position's part of the checksum, w(p)·dot(row_p, key), from the tokens alone (dot(row_p, key) is the
        page's dot plus p·key[0], the position being added to the row's first word)."""
        t = token_array(tokens)[start:end] & (VOCAB - 1)
        pos = np.arange(start, start + t.size, dtype=np.uint64)
        with np.errstate(over="ignore"):
            return (pos * self.w_slope + self.w_base) * (self.page_dot[t] + pos * self.key[0])

    def checksum(self, tokens, start: int = 0, end: int | None = None) -> int:
        """Checksum of the KV of tokens[start:end], from the tokens alone."""
        return int(self._terms(tokens, start, end).sum(dtype=np.uint64))

    def prefix_checksums(self, tokens, ends: list[int]) -> list[int]:
        """Checksums of tokens[:e] for each e in `ends` (ascending), in one pass."""
        if not ends:
            return []
        with np.errstate(over="ignore"):
            cum = np.cumsum(self._terms(tokens, 0, ends[-1]), dtype=np.uint64)
        return [int(cum[e - 1]) if e > 0 else 0 for e in ends]

    def fill(self, out: np.ndarray, tokens, start: int = 0) -> None:
        """Write the KV rows of tokens[start:] into `out` (uint8, exactly nbytes long): one gather, no temporaries."""
        t = token_array(tokens)[start:] & (VOCAB - 1)
        rows = out.view(np.uint64).reshape(t.size, self.words)
        # mode="clip": `t` is already within the pages, and take's default mode="raise" gathers into a temporary and
        # copies it over `out` (numpy buffers `out` in that mode): 8,000 rows took 0.8-1.1 ms that way, 0.2 ms this way.
        np.take(self.pages, t, axis=0, out=rows, mode="clip")
        rows[:, 0] += np.arange(start, start + t.size, dtype=np.uint64)

    def verify(self, data: np.ndarray, start: int) -> int:
        """The checksum of received KV bytes (rows for positions start, start+1, ...), computed from the bytes."""
        if data.size % self.row_bytes:
            return -1
        rows = data.view(np.uint64).reshape(-1, self.words)
        pos = np.arange(start, start + rows.shape[0], dtype=np.uint64)
        # One pass over the bytes: every row's dot with the key (the rest is per position). For 8 MiB here einsum's
        # integer loop takes 0.46-0.48 ms, `rows @ key` 0.59-0.63, np.vecdot 0.57, an unkeyed sum of the same words
        # 0.29-0.32 (microbench, 2026-12-06).
        with np.errstate(over="ignore"):
            return int(((pos * self.w_slope + self.w_base) * np.einsum("ij,j->i", rows, self.key)).sum(dtype=np.uint64))


def combine(*parts: int) -> int:
    return sum(parts) & 0xFFFFFFFFFFFFFFFF


def block_hashes(tokens, block_size: int, salt: str = "") -> list[bytes]:
    """Chained hashes of the prompt's full blocks (a block's hash covers the salt and everything before it).

    The token bytes are made in one numpy step (a per-token Python loop cost ~0.4 ms at 8,000 tokens); the chain
    itself is one blake2s per block, as each block's hash needs the one before."""
    full = len(tokens) // block_size * block_size
    raw = (token_array(tokens)[:full] & 0xFF).astype(np.uint8).tobytes()
    h = hashlib.blake2s(salt.encode(), digest_size=16).digest() if salt else b""
    hashes = []
    blake2s = hashlib.blake2s
    for i in range(0, full, block_size):
        h = blake2s(h + raw[i : i + block_size], digest_size=16).digest()
        hashes.append(h)
    return hashes
