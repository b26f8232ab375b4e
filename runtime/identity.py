"""Who belongs to a run of `disagg serve`: the supervisor makes a secret per run and gives it to its children in
the environment (never on the command line, which any local user can read in `ps`). Its hash is the run's public
id: every process answers it at /health, so the supervisor's readiness check knows its own processes from a
stranger that holds the port."""

from __future__ import annotations

import hashlib
import os

RUN_SECRET_ENV = "DISAGG_RUN_SECRET"


def run_id(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def current_run_id() -> str | None:
    """This process's run id (None when started outside `disagg serve`)."""
    secret = os.environ.get(RUN_SECRET_ENV)
    return run_id(secret) if secret else None


def engine_api_key(secret: bytes) -> str:
    """The key a run's vLLM engines require on their `/v1` routes (VLLM_API_KEY), derived from the run's secret."""
    import hmac

    return hmac.new(secret, b"vllm-api-key", hashlib.sha256).hexdigest()


# The supervisor's readiness check asks the frontend to prove it holds the run's secret (the run id is not published).
HEALTH_CHALLENGE = "X-Disagg-Challenge"
HEALTH_PROOF = "X-Disagg-Proof"


def health_proof(secret: bytes, nonce: str) -> str:
    """The answer to a readiness challenge: only a process given the run's secret can make it."""
    import hmac

    return hmac.new(secret, b"health-proof|" + nonce.encode(), hashlib.sha256).hexdigest()
