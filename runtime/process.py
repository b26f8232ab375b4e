"""What every process of a run does at start: die with its supervisor, raise its open-file limit, know its secret,
log to its own file, and exit when its event loop stops turning (so that the supervisor restarts it)."""

from __future__ import annotations

import logging
import os
import resource
import signal
import sys
import threading
import time

from .identity import RUN_SECRET_ENV

log = logging.getLogger("disagg")


def set_parent_death_signal() -> None:
    """Linux: die with the supervisor, so a SIGKILLed `disagg serve` leaves no orphan workers."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def raise_open_file_limit(target: int = 65535) -> int:
    """Raise the soft RLIMIT_NOFILE towards the hard limit, as vLLM does at start (vllm.utils set_ulimit): with the
    usual soft limit of 1024, a thousand idle client connections starve every request of a socket. Returns the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(target, hard) if hard != resource.RLIM_INFINITY else target
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d: %s", soft, exc)
    return soft


def run_secret() -> bytes:
    """This run's secret, given by the supervisor in the environment (and removed from it, so that nothing this
    process starts inherits it by accident)."""
    secret = os.environ.pop(RUN_SECRET_ENV, "")
    if not secret:
        sys.exit(f"{RUN_SECRET_ENV} is not set: runtime processes are started by `disagg serve`")
    return secret.encode()


def setup(name: str) -> None:
    set_parent_death_signal()
    raise_open_file_limit()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {name} %(levelname)s %(message)s", stream=sys.stderr)


class Watchdog:
    """Exits the process when its event loop has not turned for `limit` seconds (a wedged process answers nothing
    and would otherwise sit there; the supervisor restarts it). `beat()` is called from the loop."""

    def __init__(self, limit: float = 30.0):
        self.limit = limit
        self.last = time.monotonic()
        threading.Thread(target=self._watch, name="disagg-watchdog", daemon=True).start()

    def beat(self) -> None:
        self.last = time.monotonic()

    def _watch(self) -> None:
        while True:
            time.sleep(1.0)
            stalled = time.monotonic() - self.last
            if stalled > self.limit:
                log.error("event loop stalled for %.0f s: exiting so that the supervisor restarts this process", stalled)
                logging.shutdown()
                os._exit(3)
