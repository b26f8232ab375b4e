"""One log line per request and a periodic stats line, as `vllm serve` prints them (uvicorn's access line per
request; vLLM's LoggingStatLogger every VLLM_LOG_STATS_INTERVAL = 10 s, at debug level while idle: vllm/v1/metrics/
loggers.py, v0.11). `disagg serve` echoes both from the frontend's log to its console (--no-request-log: stats only).

    request POST /v1/completions 200 cmpl-…: route=remote (above_threshold) decode=decode-0 prefill=prefill-0 prompt=1000 completion=16 tokens, ttft 12.3 ms, total 80.1 ms
    stats: 12 requests in 10.0 s; avg prompt throughput 1200.0 tokens/s, avg generation throughput 19.2 tokens/s; running 2; routes: remote 10, local 2
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter

log = logging.getLogger("disagg.requests")

STATS_INTERVAL_ENV = "DISAGG_LOG_STATS_INTERVAL"
STATS_INTERVAL_S = 10.0  # vLLM's VLLM_LOG_STATS_INTERVAL default
REQUEST_PREFIX = "request "  # what `disagg serve` echoes (with STATS_PREFIX)
STATS_PREFIX = "stats: "


class RequestLog:
    def __init__(self):
        self.requests = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.routes: Counter = Counter()
        self.running = 0
        self.task: asyncio.Task | None = None
        try:
            self.interval = float(os.environ.get(STATS_INTERVAL_ENV, STATS_INTERVAL_S))
        except ValueError:
            self.interval = STATS_INTERVAL_S

    def started(self) -> None:
        """A request arrived: starts the stats line's loop on the first one (the frontend's loop runs by then)."""
        self.running += 1
        if self.task is None and self.interval > 0:
            self.task = asyncio.get_running_loop().create_task(self._loop())

    def done(self, path: str, status: int, rid: str, info: dict, prompt: int, completion: int, arrived: float, first: float | None) -> None:
        self.running -= 1
        now = time.perf_counter()
        if status == 200:
            self.requests += 1
            self.prompt_tokens += prompt
            self.completion_tokens += completion
            self.routes[info.get("route") or "unknown"] += 1
        where = ""
        if info:
            where = f"route={info.get('route')} ({info.get('reason')}) decode={info.get('decode_worker')}"
            if info.get("prefill_worker"):
                where += f" prefill={info['prefill_worker']}"
            where += " "
        ttft = f", ttft {(first - arrived) * 1e3:.1f} ms" if first is not None else ""
        log.info("%sPOST %s %d %s: %sprompt=%d completion=%d tokens%s, total %.1f ms", REQUEST_PREFIX, path, status, rid, where, prompt, completion, ttft,
                 (now - arrived) * 1e3)

    def line(self, seconds: float) -> str | None:
        """The stats line for the last `seconds`, or None when nothing happened (vLLM logs that at debug level)."""
        if not self.requests and not self.running:
            return None
        routes = ", ".join(f"{k} {v}" for k, v in sorted(self.routes.items())) or "none finished"
        out = (f"{STATS_PREFIX}{self.requests} requests in {seconds:.1f} s; avg prompt throughput {self.prompt_tokens / seconds:.1f} tokens/s, "
               f"avg generation throughput {self.completion_tokens / seconds:.1f} tokens/s; running {self.running}; routes: {routes}")
        self.requests = self.prompt_tokens = self.completion_tokens = 0
        self.routes.clear()
        return out

    async def _loop(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(self.interval)
            now = time.perf_counter()
            text = self.line(now - last)
            last = now
            if text:
                log.info("%s", text)
