"""`/v1/completions` and `/v1/chat/completions`: parse as vLLM would, route, and answer (whole or streamed).

Client mistakes are 400s that say what is wrong (invalid JSON or unicode, token ids outside the vocabulary, an
unsupported parameter by name, a prompt longer than the context), never a 5xx. A client that goes away stops its
request on every worker (`disagg_requests_aborted_total`). A stream that cannot finish ends with an OpenAI error
event and `[DONE]`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from array import array

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import ValidationError

from ..backends.chat_template import ChatTemplateError
from ..channel import PromptIds
from ..openai_api import (
    ChatCompletionRequest,
    CompletionRequest,
    completion_id,
    completion_response,
    error_body,
    logprobs_body,
    request_id,
    stream_chunk,
    text_chunk_encoder,
    usage_chunk,
    validation_message,
)
from .reqlog import RequestLog
from .router import RequestFailed

log = logging.getLogger("disagg.frontend")

BODY_TIMEOUT = 10.0  # seconds to receive a request body once its headers arrived


def payload_problem(exc: BaseException) -> str:
    """What aiohttp's parser said about a request body (its RequestPayloadError wraps the parser's error)."""
    cause = exc.__cause__ or exc
    text = getattr(cause, "message", None) or str(cause) or type(cause).__name__
    return text.splitlines()[0][:200] if text else type(cause).__name__


def prompt_ids(ids: list[int], vocab: int) -> PromptIds:
    """A prompt given as token ids, checked against the vocabulary on its uint32 packing (which the workers are sent):
    a Python loop over the ids cost ~0.25 ms at 8,000 of them, this ~0.05 ms."""
    import numpy as np

    try:
        packed = array("I", ids)  # OverflowError: a negative id, or one past uint32
        bad = len(packed) and int(np.frombuffer(packed, dtype=np.uint32).max()) >= vocab
    except OverflowError:
        bad = True
    if bad:
        raise RequestFailed(400, f"prompt: token ids must be in [0, {vocab}) (the model's vocabulary)", "invalid_token_id")
    return PromptIds(ids, packed.tobytes())


def sse(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


class StopMatcher:
    """Cuts the output at the first stop string, as vLLM does (the stop string itself is not returned)."""

    def __init__(self, stops: list[str]):
        self.stops = stops
        self.keep = max((len(s) for s in stops), default=1) - 1
        self.text = ""
        self.emitted = 0

    def feed(self, piece: str) -> tuple[str, bool]:
        """(text safe to emit now, stopped)."""
        if not self.stops:
            return piece, False
        self.text += piece
        hits = [i for i in (self.text.find(s, max(self.emitted - self.keep, 0)) for s in self.stops) if i >= 0]
        if hits:
            out = self.text[self.emitted : min(hits)]
            self.emitted = min(hits)
            return out, True
        safe = max(len(self.text) - self.keep, self.emitted)
        out, self.emitted = self.text[self.emitted : safe], safe
        return out, False

    def rest(self) -> str:
        out, self.emitted = self.text[self.emitted :], len(self.text)
        return out


class LogprobTrack:
    """Per-token logprobs lined up with the output text, so that what a stop string cuts loses its tokens too. The
    backend yields a piece's ("logprobs", entries) just before its text."""

    def __init__(self):
        self.entries: list = []
        self.starts: list[int] = []
        self.pending: list = []
        self.end = 0
        self.taken = 0

    def add(self, entries: list) -> None:
        self.pending.extend(entries)

    def text(self, piece: str) -> None:
        pos = self.end
        for e in self.pending:
            self.entries.append(e)
            self.starts.append(pos)
            pos += len(e[0])
        self.pending = []
        self.end += len(piece)

    def take_rest(self) -> tuple[list, float]:
        """The output has ended: every entry not taken yet, one per token. Logprobs that came after the last text piece
        (tokens that decode to no text, in a chunk of their own) are the last entries, where the text ends."""
        self.text("")
        return self.take(float("inf"))

    def take(self, upto: float) -> tuple[list, float]:
        """The entries not taken yet of tokens that start before `upto` characters of output, and where the first starts."""
        i = j = self.taken
        while j < len(self.entries) and self.starts[j] < upto:
            j += 1
        self.taken = j
        return self.entries[i:j], (self.starts[i] if i < j else upto)


class Output:
    """One answer's output as its pieces arrive, read alike by the whole answer and the stream: its tokens counted, each
    piece timed (time to first token, then inter-token latency), the text cut at the first stop string, and each
    token's logprobs lined up with the text when the request asked for them (`track`, else None)."""

    def __init__(self, frontend, arrived: float, seen: dict, req):
        self.f, self.arrived, self.seen = frontend, arrived, seen
        self.stops = req.stops()
        self.last: float | None = None  # when the latest piece came
        self.stop = StopMatcher(self.stops)
        self.track = LogprobTrack() if req.top_alternatives() is not None else None
        self.n = 0  # tokens so far

    def restart(self) -> None:
        """The request moved to another worker before any of its answer was sent: the output starts again (its
        timing goes on)."""
        self.stop, self.n = StopMatcher(self.stops), 0
        self.track = LogprobTrack() if self.track is not None else None

    def logprobs(self, entries: list) -> None:
        if self.track is not None:
            self.track.add(entries)

    def text(self, value: tuple[str, int]) -> tuple[str, bool]:
        """A piece and its number of tokens: (the text to send now, whether a stop string ended the output there)."""
        self.last = self.f.observe_piece(self.arrived, self.last)
        self.seen["first"] = self.seen["first"] or self.last
        piece, k = value
        self.n += k
        if self.track is not None:
            self.track.text(piece)
        return self.stop.feed(piece)


class Completions:
    def __init__(self, frontend):
        self.f = frontend
        self.log = RequestLog()

    async def parse(self, request: web.Request, chat: bool):
        f = self.f
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                raw_bytes = await request.read()
        except asyncio.TimeoutError:
            raise RequestFailed(408, f"the request body did not arrive within {BODY_TIMEOUT:g} s", "request_timeout") from None
        except (HttpProcessingError, web.RequestPayloadError) as exc:  # a body that does not decode (Content-Encoding), broken chunks
            raise RequestFailed(400, f"request body could not be read: {payload_problem(exc)}", "invalid_body") from None
        model = ChatCompletionRequest if chat else CompletionRequest
        try:
            # Straight from the bytes: json.loads and then model_validate built every value twice (an 8,000-id prompt
            # was the frontend's largest cost per request at long prompts).
            req = model.model_validate_json(raw_bytes)
        except ValidationError:
            req = self._parse_dict(raw_bytes, model)  # the two-step parse, for its error: the same 400s as before
        if bad := req.unsupported():
            raise RequestFailed(400, f"unsupported parameter{'s' if len(bad) > 1 else ''}: {', '.join(bad)} (this server honours model, prompt/messages, "
                                "max_tokens, max_completion_tokens, stream, stream_options, n=1, temperature, top_p, stop, seed, presence_penalty, frequency_penalty, "
                                "logprobs, top_logprobs (chat), cache_salt, disagg.route)", "unsupported_parameter")
        if req.model is not None and req.model != f.plan.served_model_name:
            raise RequestFailed(404, f"model {req.model!r} is not served here; this frontend serves {f.plan.served_model_name!r}", "model_not_found")
        try:
            if chat:
                tokens = f.backend.tokenize(f.backend.chat_prompt([{"role": m.role, "content": m.text()} for m in req.messages]))
            elif isinstance(req.prompt, str):
                tokens = f.backend.tokenize(req.prompt)
            else:
                tokens = prompt_ids(req.prompt, f.backend.vocab_size)
        except UnicodeEncodeError:
            raise RequestFailed(400, "the prompt is not valid unicode (an unpaired surrogate?)", "invalid_unicode") from None
        except ChatTemplateError as exc:
            raise RequestFailed(400, str(exc), "invalid_request") from None
        if not tokens:
            raise RequestFailed(400, "prompt: the prompt has no tokens", "invalid_request")
        max_tokens = req.output_tokens(len(tokens), f.plan.max_model_len)
        if max_tokens < 1 or len(tokens) + max_tokens > f.plan.max_model_len:
            raise RequestFailed(400, f"prompt ({len(tokens)} tokens) plus max_tokens ({max_tokens}) exceeds max-model-len {f.plan.max_model_len}", "context_length_exceeded")
        return req, tokens if isinstance(tokens, PromptIds) else PromptIds(tokens), max_tokens

    @staticmethod
    def _parse_dict(raw_bytes: bytes, model):
        """json.loads, then model_validate: what a body the one-step parse refused gets, so that its 400 says the same
        (and a body only json.loads reads, UTF-16 say, is still served)."""
        try:
            raw = json.loads(raw_bytes)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RequestFailed(400, "request body is not valid JSON (UTF-8)", "invalid_json") from None
        except RecursionError:
            raise RequestFailed(400, "request body is JSON nested too deeply", "invalid_json") from None
        if not isinstance(raw, dict):
            raise RequestFailed(400, "request body must be a JSON object", "invalid_json")
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            message, _ = validation_message(exc)
            raise RequestFailed(400, message, "invalid_request") from None

    async def handle(self, request: web.Request, chat: bool) -> web.StreamResponse:
        arrived = time.perf_counter()
        rid = completion_id(chat)
        seen = {"status": 500, "info": {}, "prompt": 0, "completion": 0, "first": None}  # filled in as the request goes
        self.log.started()
        try:
            return await self._handle(request, chat, arrived, rid, seen)
        finally:
            self.log.done(request.path, seen["status"], rid, seen["info"], seen["prompt"], seen["completion"], arrived, seen["first"])

    async def _handle(self, request: web.Request, chat: bool, arrived: float, rid: str, seen: dict) -> web.StreamResponse:
        f = self.f
        try:
            req, tokens, max_tokens = await self.parse(request, chat)
        except RequestFailed as exc:
            seen["status"] = exc.status
            return f.error(exc)
        seen["prompt"] = len(tokens)
        sampling = req.sampling()
        sent = {"any": False}
        events = f.router.serve(tokens, max_tokens, request_id(), sampling, req.cache_salt or "", sent, req.disagg.route if req.disagg else None)
        f.metrics.in_flight.inc()
        try:
            if req.stream:
                return await self.stream(request, events, rid, chat, arrived, len(tokens), req, sent, seen)
            return await self.whole(events, rid, chat, arrived, len(tokens), req, seen)
        except (asyncio.CancelledError, ConnectionResetError) as exc:
            seen["status"] = 503 if f.terminating else 499  # 499: the client closed the connection (nginx's code)
            if f.terminating and not req.stream and request.transport is not None and not request.transport.is_closing():
                return f.error(RequestFailed(503, "the server is shutting down", "shutting_down"))  # the drain deadline passed
            f.metrics.aborted.inc()  # the client went away: closing `events` stops the work on every worker
            # One line at INFO: a client that leaves is no server error (re-raised, aiohttp would log a traceback at ERROR).
            log.info("%s: the client went away %s; its work was stopped on every worker", rid, "mid-stream" if req.stream else "before the answer")
            if isinstance(exc, asyncio.CancelledError):
                raise
            gone = getattr(exc, "response", None)  # the stream's response: aiohttp finds its connection closed, quietly
            return gone if gone is not None else web.Response(status=499)
        finally:
            await events.aclose()
            f.metrics.in_flight.dec()

    async def whole(self, events, rid: str, chat: bool, arrived: float, prompt_len: int, req, seen: dict) -> web.Response:
        f = self.f
        output = Output(f, arrived, seen, req)
        text: list[str] = []
        info: dict = {}
        finish, usage_tokens = "length", None
        cut = False  # a stop string ended the text: the tokens from it on are not the answer's
        try:
            async for kind, value in events:
                if kind == "text":
                    out, stopped = output.text(value)
                    text.append(out)
                    if stopped:
                        finish, cut = "stop", True
                        break
                elif kind == "logprobs":
                    output.logprobs(value)
                elif kind == "start":
                    info = seen["info"] = value
                elif kind == "restart":
                    text = []
                    output.restart()
                elif kind == "usage":
                    usage_tokens = value
                elif kind == "end":
                    finish = value
                    text.append(output.stop.rest())
        except RequestFailed as exc:
            seen["status"] = exc.status
            return f.error(exc)
        f.metrics.duration.observe(time.perf_counter() - arrived)
        n = usage_tokens if usage_tokens is not None and finish != "stop" else output.n
        usage = {"prompt_tokens": prompt_len, "completion_tokens": n, "total_tokens": prompt_len + n}
        whole_text = "".join(text)
        logprobs, track = None, output.track
        if track is not None:
            # every token's entry unless a stop string cut the text (a token with no text of its own starts where the
            # text ends: it is still one of the answer's tokens)
            logprobs = (track.take(len(whole_text)) if cut else track.take_rest())[0]
        body = completion_response(rid, f.plan.served_model_name, whole_text, finish, usage, chat, info, logprobs)
        seen["status"], seen["completion"] = 200, n
        return web.json_response(body, headers={"X-Disagg-Route": info.get("route", ""), "X-Disagg-Reason": info.get("reason", "")})

    async def stream(self, request: web.Request, events, rid: str, chat: bool, arrived: float, prompt_len: int, req, sent: dict, seen: dict) -> web.StreamResponse:
        f = self.f
        model = f.plan.served_model_name
        created = int(time.time())
        output = Output(f, arrived, seen, req)
        text_event = text_chunk_encoder(rid, model, chat, created)
        track = output.track  # a stream never restarts: one track throughout
        emitted = [0]
        if track is None:
            def tail_event(tail: str) -> bytes:  # the output has ended: the text the stop matcher held back, if any
                return text_event(tail) if tail else b""
        else:
            def text_event(out: str) -> bytes:  # each chunk carries the logprobs of the tokens its text starts
                emitted[0] += len(out)
                entries, offset = track.take(emitted[0])
                return sse(stream_chunk(rid, model, out, None, chat, created, logprobs=logprobs_body(entries, chat, offset)))

            def tail_event(tail: str) -> bytes:  # and every token's entry not sent yet, those of tokens with no text too
                entries, offset = track.take_rest()
                if not (tail or entries):
                    return b""
                return sse(stream_chunk(rid, model, tail, None, chat, created, logprobs=logprobs_body(entries, chat, offset)))
        resp = None
        finish = None
        try:
            async for kind, value in events:
                if kind == "start":
                    seen["info"] = value
                    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                                       "X-Disagg-Route": value["route"], "X-Disagg-Reason": value["reason"]})
                    await resp.prepare(request)
                    sent["any"] = True
                    if chat:
                        await resp.write(sse(stream_chunk(rid, model, None, None, chat, created, first=True)))
                elif kind == "logprobs":
                    output.logprobs(value)
                elif kind == "text":
                    out, stopped = output.text(value)
                    if stopped:
                        finish = "stop"
                        await resp.write((text_event(out) if out else b"") + sse(stream_chunk(rid, model, None, "stop", chat, created)))
                        break
                    if out:
                        await resp.write(text_event(out))
                elif kind == "end":
                    finish = value
                    await resp.write(tail_event(output.stop.rest()) + sse(stream_chunk(rid, model, None, value, chat, created)))
            if finish is None:
                raise RequestFailed(503, "the stream ended early", "decode_failed")
            tail = b""
            if req.stream_options and req.stream_options.include_usage:
                tail = sse(usage_chunk(rid, model, chat, created, {"prompt_tokens": prompt_len, "completion_tokens": output.n, "total_tokens": prompt_len + output.n}))
            await resp.write(tail + b"data: [DONE]\n\n")
            f.metrics.duration.observe(time.perf_counter() - arrived)
            seen["status"], seen["completion"] = 200, output.n
            return resp
        except ConnectionResetError as exc:
            exc.response = resp  # for handle(): the prepared response to end with
            raise
        except RequestFailed as exc:
            seen["status"], seen["completion"] = exc.status, output.n
            if resp is None:
                return f.error(exc)
            f.metrics.errors.labels(str(exc.status)).inc()
            await resp.write(sse(error_body(exc.message, err_type="server_error", code=exc.status)) + b"data: [DONE]\n\n")
            return resp
        except asyncio.CancelledError:
            if resp is not None and f.terminating and not request.transport.is_closing():
                # SIGTERM's drain deadline passed: tell the client rather than cutting the stream.
                f.metrics.errors.labels("503").inc()
                await resp.write(sse(error_body("the server is shutting down", err_type="server_error", code=503)) + b"data: [DONE]\n\n")
                return resp
            raise
