"""Who belongs to a run of `disagg serve`: the supervisor makes a secret per run and gives it to its children in
the environment (never on the command line, which any local user can read in `ps`).

The run id names a run in etcd (and tells a frontend that a registration is of another run, so it can say so): an
HMAC of a label under the secret, so it reveals nothing about the secret and nobody without the secret can compute
it (it was a plain hash of the secret: anyone who guessed or read the secret elsewhere could check it, and knowing
the id was enough to register). Knowing the id proves nothing: registrations carry a signature (`sign`), and a worker
proves itself on the channel's handshake (channel.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os

RUN_SECRET_ENV = "DISAGG_RUN_SECRET"


def _derive(secret: bytes | str, label: bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, label, hashlib.sha256).digest()


def run_id(secret: bytes | str) -> str:
    return _derive(secret, b"disagg run id v2").hex()[:16]


def current_run_id() -> str | None:
    """This process's run id (None when started outside `disagg serve`)."""
    secret = os.environ.get(RUN_SECRET_ENV)
    return run_id(secret) if secret else None


def engine_api_key(secret: bytes) -> str:
    """The key a run's vLLM engines require on their `/v1` routes (VLLM_API_KEY), derived from the run's secret."""
    return _derive(secret, b"vllm-api-key").hex()


def _canonical(key: str, record: dict) -> bytes:
    body = {k: v for k, v in record.items() if k != "sig"}
    return json.dumps([key, body], sort_keys=True, separators=(",", ":")).encode()


def sign(secret: bytes | str, key: str, record: dict) -> dict:
    """`record` with `sig`: an HMAC under the run's secret over the etcd key and every field, so a registration
    can neither be forged nor moved to another key nor edited (etcd itself has no authentication)."""
    mac = hmac.new(_derive(secret, b"disagg registration v1"), _canonical(key, record), hashlib.sha256).hexdigest()
    return {**{k: v for k, v in record.items() if k != "sig"}, "sig": mac}


def signed_by(secret: bytes | str, key: str, record: dict) -> bool:
    """True when `record` at `key` was signed with this run's secret."""
    sig = record.get("sig")
    return isinstance(sig, str) and hmac.compare_digest(sig, sign(secret, key, record)["sig"])

# The supervisor's readiness check asks the frontend to prove it holds the run's secret (the run id is not published).
HEALTH_CHALLENGE = "X-Disagg-Challenge"
HEALTH_PROOF = "X-Disagg-Proof"


def health_proof(secret: bytes, nonce: str) -> str:
    """The answer to a readiness challenge: only a process given the run's secret can make it."""
    return hmac.new(secret, b"health-proof|" + nonce.encode(), hashlib.sha256).hexdigest()
