"""OpenAI-compatible request bodies and response shapes for `/v1/completions` and `/v1/chat/completions`.

Parameters are treated as vLLM's OpenAI server treats them where this runtime can honour them (`max_tokens` unset
is the rest of the context; `stop`, `seed`, `presence_penalty`, `frequency_penalty`, `logprobs` (an int on
/v1/completions, a bool with `top_logprobs` on chat), `stream_options.include_usage`, chat content given as a list of
text parts; vLLM's `cache_salt`; this runtime's own `disagg.route`, a requested route: see frontend/router.py), and every other parameter a client sets is refused with a 400 that names it, never
silently ignored. The logprobs of a choice are built from per-token entries `(token text, logprob, [(alternative
text, logprob), ...])` that the backend yields (backends/mock.py documents the mock's values; vLLM's are its own).
"""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_LOGPROBS = 20  # vLLM's default --max-logprobs (vllm/config/model.py, v0.11)

# Accepted with any value because they change nothing a client can observe here.
_HARMLESS = {"user", "metadata", "store", "service_tier"}


class DisaggOptions(BaseModel):
    """This runtime's own request field: `{"route": "local" | "remote"}` asks for where the prompt is prefilled."""

    model_config = ConfigDict(extra="forbid")

    route: Literal["local", "remote"] | None = None


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stream: bool = False
    stream_options: "StreamOptions | None" = None
    n: int = Field(default=1, ge=1, le=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    cache_salt: str | None = Field(default=None, min_length=1)
    disagg: DisaggOptions | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, v: Any) -> Any:
        stops = [v] if isinstance(v, str) else v or []
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("stop takes up to 4 non-empty strings")
        return v

    def unsupported(self) -> list[str]:
        """Parameters the client set (to something other than null) that this server does not implement."""
        return sorted(k for k, v in (self.model_extra or {}).items() if v is not None and k not in _HARMLESS)

    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def sampling(self) -> dict:
        """What the engine is asked for besides the prompt, in vLLM's request fields (`logprobs`: alternatives per token)."""
        out = {k: v for k, v in (("temperature", self.temperature), ("top_p", self.top_p), ("presence_penalty", self.presence_penalty),
                                 ("frequency_penalty", self.frequency_penalty)) if v is not None}
        if self.seed is not None and (self.temperature or 0) > 0:
            out["seed"] = self.seed  # greedy decoding (temperature 0) ignores the seed, as vLLM's does
        if self.top_alternatives() is not None:
            out["logprobs"] = self.top_alternatives()
        return out

    def top_alternatives(self) -> int | None:
        return None

    def output_tokens(self, prompt_tokens: int, max_model_len: int) -> int:
        """`max_tokens`, else (as vLLM) the rest of the context."""
        return self.max_completion_tokens or self.max_tokens or max(max_model_len - prompt_tokens, 0)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_usage: bool = False
    continuous_usage_stats: bool = False


class CompletionRequest(_Request):
    prompt: str | list[int]
    logprobs: int | None = Field(default=None, ge=0, le=MAX_LOGPROBS)

    def top_alternatives(self) -> int | None:
        return self.logprobs

    @field_validator("prompt")
    @classmethod
    def _non_empty(cls, v: Any) -> Any:
        if len(v) == 0:
            raise ValueError("prompt must not be empty")
        return v


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[TextPart]

    @field_validator("content", mode="before")
    @classmethod
    def _parts(cls, v: Any) -> Any:
        if isinstance(v, list):
            for part in v:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                if kind != "text":
                    raise ValueError(f"only text content parts are supported here, not {kind!r}")
        return v

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class ChatCompletionRequest(_Request):
    messages: list[ChatMessage] = Field(min_length=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_LOGPROBS)

    @field_validator("top_logprobs")
    @classmethod
    def _with_logprobs(cls, v: Any, info) -> Any:
        if v and not info.data.get("logprobs"):
            raise ValueError("top_logprobs needs logprobs: true")
        return v

    def top_alternatives(self) -> int | None:
        return (self.top_logprobs or 0) if self.logprobs else None


_Request.model_rebuild()
CompletionRequest.model_rebuild()
ChatCompletionRequest.model_rebuild()


def error_body(message: str, param: str | None = None, err_type: str = "invalid_request_error", code: str | int | None = None) -> dict:
    return {"error": {"message": message, "type": err_type, "param": param, "code": code}}


def validation_message(exc: ValidationError) -> tuple[str, str | None]:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    msg = err.get("msg", "invalid")
    if err.get("type") == "literal_error" and loc.endswith(".type"):
        msg = "only text content parts are supported here"
    return f"{loc}: {msg}" if loc else msg, loc or None


_PROCESS = uuid.uuid4().hex[:12]  # this process's part of every id (uuid4 per request was 3% of the frontend's CPU)
_SERIAL = itertools.count(1)


def request_id() -> str:
    """Unique in this run: the process's random part and a counter."""
    return f"{_PROCESS}{next(_SERIAL):012x}"


def completion_id(chat: bool) -> str:
    return ("chatcmpl-" if chat else "cmpl-") + request_id()


def logprobs_body(entries: list | None, chat: bool, offset: int = 0) -> dict | None:
    """OpenAI's logprobs of a choice (or of one streamed chunk) from per-token entries; `offset`: text before them."""
    if entries is None:
        return None
    if chat:
        def one(token: str, lp: float) -> dict:
            return {"token": token, "logprob": lp, "bytes": list(token.encode("utf-8", "surrogatepass"))}

        return {"content": [{**one(t, lp), "top_logprobs": [one(a, alp) for a, alp in top]} for t, lp, top in entries]}
    offsets = []
    for t, _, _ in entries:
        offsets.append(offset)
        offset += len(t)
    return {"tokens": [t for t, _, _ in entries], "token_logprobs": [lp for _, lp, _ in entries],
            "top_logprobs": [dict(top) for _, _, top in entries], "text_offset": offsets}


def completion_response(rid: str, model: str, text: str, finish: str, usage: dict, chat: bool, extra: dict, logprobs: list | None = None) -> dict:
    choice: dict[str, Any] = {"index": 0, "finish_reason": finish, "logprobs": logprobs_body(logprobs, chat)}
    if chat:
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    return {
        "id": rid, "object": "chat.completion" if chat else "text_completion", "created": int(time.time()), "model": model,
        "choices": [choice], "usage": usage, "disagg": extra,
    }


def stream_chunk(rid: str, model: str, text: str | None, finish: str | None, chat: bool, created: int, first: bool = False,
                 logprobs: dict | None = None) -> dict:
    choice: dict[str, Any] = {"index": 0, "finish_reason": finish, "logprobs": logprobs}
    if chat:
        delta: dict[str, Any] = {}
        if first:
            delta["role"] = "assistant"
        if text:
            delta["content"] = text
        choice["delta"] = delta
    else:
        choice["text"] = text or ""
    return {"id": rid, "object": "chat.completion.chunk" if chat else "text_completion", "created": created, "model": model, "choices": [choice]}


def usage_chunk(rid: str, model: str, chat: bool, created: int, usage: dict) -> dict:
    return {"id": rid, "object": "chat.completion.chunk" if chat else "text_completion", "created": created, "model": model, "choices": [], "usage": usage}


def text_chunk_encoder(rid: str, model: str, chat: bool, created: int):
    """`text -> SSE event bytes` for the text chunks of one stream: the chunk's JSON is built once, only the text is
    encoded per chunk (a stream's chunks differ in nothing else)."""
    import json

    mark = "\u0000disagg-text\u0000"
    whole = json.dumps(stream_chunk(rid, model, mark, None, chat, created), separators=(",", ":"))
    head, tail = whole.split(json.dumps(mark), 1)
    head_b, tail_b = b"data: " + head.encode(), tail.encode() + b"\n\n"
    return lambda text: head_b + json.dumps(text).encode() + tail_b
