"""The channel's cryptography: a handshake bound to its endpoint, and every frame after it sealed (channel.py).

Both ends know the run's secret. The worker sends a nonce; the caller answers with its own nonce and a proof; the
worker answers with its proof. Both proofs, and the session keys, come from one HKDF (RFC 5869, SHA-256) over the
secret with the *transcript* as its info: both nonces, the worker id the caller expects, and the address it dialled
(host:port, as registered). The worker computes the transcript with its own id and its own registered address, so a
relay that forwards a handshake between a caller and the real worker (at another address, or under another id) makes
the two transcripts differ: the worker refuses the caller's proof and no key is ever shared with the relay's path.

After the proofs every frame travels as a record `[u32 length][AES-256-GCM(frames)]` (NIST SP 800-38D, from the
`cryptography` package): one key per direction and connection, the record counter as the 96-bit nonce (never sent,
never reused under one key; so a replayed, reordered, dropped or altered record fails to open and closes the
connection), the length prefix as associated data. A relay sees ciphertext it can neither read nor change. AES-GCM
rather than ChaCha20-Poly1305: with AES instructions (x86 AES-NI, ARMv8 crypto) it costs 0.6 µs per small record
here against 1.7 µs, and the channel seals several records per request.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = 2
LABEL = b"disagg channel v2"
NONCE_BYTES = 16
TAG = 16  # GCM's tag
_REC = struct.Struct(">I")


class SealError(Exception):
    """A record that does not open: altered, replayed, reordered, or sealed with another key."""


def transcript(server_nonce: bytes, client_nonce: bytes, worker_id: str, address: str) -> bytes:
    parts = [LABEL, server_nonce, client_nonce, worker_id.encode(), address.encode()]
    return b"".join(_REC.pack(len(p)) + p for p in parts)


class Keys:
    """What one handshake derives: the two proofs and the two directions' record keys."""

    __slots__ = ("client_proof", "server_proof", "c2s", "s2c")

    def __init__(self, secret: bytes, server_nonce: bytes, client_nonce: bytes, worker_id: str, address: str):
        t = transcript(server_nonce, client_nonce, worker_id, address)
        okm = HKDF(algorithm=hashes.SHA256(), length=96, salt=None, info=t).derive(secret)
        auth, self.c2s, self.s2c = okm[:32], okm[32:64], okm[64:]
        digest = hashlib.sha256(t).digest()
        self.client_proof = hmac.new(auth, b"client->worker" + digest, hashlib.sha256).hexdigest()
        self.server_proof = hmac.new(auth, b"worker->client" + digest, hashlib.sha256).hexdigest()


class Sealer:
    """One direction's outgoing records."""

    __slots__ = ("aead", "counter")

    def __init__(self, key: bytes):
        self.aead, self.counter = AESGCM(key), 0

    def seal(self, plaintext: bytes) -> bytes:
        prefix = _REC.pack(len(plaintext) + TAG)
        nonce = self.counter.to_bytes(12, "big")
        self.counter += 1
        return prefix + self.aead.encrypt(nonce, plaintext, prefix)


class Opener:
    """One direction's incoming records, in order: the counter the sender used is the one expected here."""

    __slots__ = ("aead", "counter")

    def __init__(self, key: bytes):
        self.aead, self.counter = AESGCM(key), 0

    def open(self, prefix: bytes, ciphertext: bytes) -> bytes:
        nonce = self.counter.to_bytes(12, "big")
        try:
            plaintext = self.aead.decrypt(nonce, ciphertext, prefix)
        except InvalidTag:
            raise SealError("a record failed authentication (altered, replayed, reordered or from another key)") from None
        self.counter += 1
        return plaintext


def record_length(prefix: bytes) -> int:
    return _REC.unpack(prefix)[0]


class SecureReader:
    """A StreamReader's `readexactly`, over sealed records: what channel.read_frame reads after the handshake."""

    __slots__ = ("reader", "opener", "max_record", "buf", "pos")

    def __init__(self, reader, opener: Opener, max_record: int):
        self.reader, self.opener, self.max_record = reader, opener, max_record
        self.buf, self.pos = b"", 0

    async def readexactly(self, n: int) -> bytes:
        if len(self.buf) - self.pos >= n:
            out = self.buf[self.pos : self.pos + n]
            self.pos += n
            return out
        parts = [self.buf[self.pos :]] if self.pos < len(self.buf) else []
        have = len(self.buf) - self.pos
        self.buf, self.pos = b"", 0
        while have < n:
            prefix = await self.reader.readexactly(4)
            size = record_length(prefix)
            if size < TAG or size > self.max_record:
                raise SealError(f"record of {size} bytes")
            plain = self.opener.open(prefix, await self.reader.readexactly(size))
            parts.append(plain)
            have += len(plain)
        data = b"".join(parts)
        self.buf, self.pos = data, n
        return data[:n]
