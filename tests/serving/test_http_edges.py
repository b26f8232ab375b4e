"""The frontend's HTTP edges: pipelined requests each get their answer; every client mistake, the HTTP parser's own
verdicts included, is a 4xx in OpenAI's JSON error shape; a client that leaves mid-stream is one INFO line."""

from __future__ import annotations

import json
import socket
import struct
import time
import zlib

import pytest

from .conftest import EXAMPLES, prompt, raw, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fixed(serve):
    return serve(EXAMPLES / "seed-fixed.yaml")


def address(server) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def read_responses(sock: socket.socket, want: int, timeout: float = 10.0) -> list[tuple[int, dict, bytes]]:
    """Parse up to `want` HTTP/1.1 responses (Content-Length bodies) from the socket; fewer if it closes first."""
    sock.settimeout(timeout)
    buf, out = b"", []
    deadline = time.monotonic() + timeout
    while len(out) < want and time.monotonic() < deadline:
        while b"\r\n\r\n" in buf and len(out) < want:
            head, rest = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in lines[1:] if ":" in h)}
            n = int(headers.get("content-length", "0"))
            if len(rest) < n:
                break
            out.append((int(lines[0].split()[1]), headers, rest[:n]))
            buf = rest[n:]
        if len(out) >= want:
            break
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        buf += chunk
    return out


def exchange(server, data: bytes, want: int = 1) -> list[tuple[int, dict, bytes]]:
    with socket.create_connection(address(server), timeout=10) as sock:
        sock.sendall(data)
        return read_responses(sock, want)


def test_pipelined_requests_each_get_their_answer_in_order(fixed):
    host = f"Host: {address(fixed)[0]}\r\n"
    body = json.dumps({"prompt": prompt(50), "max_tokens": 2}).encode()
    post = b"POST /v1/completions HTTP/1.1\r\n" + host.encode() + b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    get = b"GET /v1/models HTTP/1.1\r\n" + host.encode() + b"\r\n"
    answers = exchange(fixed, post + get + post + get + b"GET /nowhere HTTP/1.1\r\n" + host.encode() + b"\r\n", want=5)
    assert [a[0] for a in answers] == [200, 200, 200, 200, 404], answers
    assert json.loads(answers[0][2])["object"] == "text_completion" and json.loads(answers[1][2])["object"] == "list"
    assert json.loads(answers[4][2])["error"]["type"] == "invalid_request_error"


def test_json_nested_100000_deep_is_a_400(fixed):
    code, text = raw(fixed.url, b"[" * 100_000 + b"]" * 100_000)
    assert code == 400 and "nested too deeply" in json.loads(text)["error"]["message"]
    code, text = raw(fixed.url, b'{"prompt": "x", "max_tokens": 1, "stop": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert code == 400 and json.loads(text)["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("encoding, body", [
    ("deflate", b"this is not deflate at all \x00\xff" * 10),
    ("gzip", b"\x1f\x8b\x08\x00garbage after a gzip magic"),
])
def test_a_body_that_does_not_decode_is_a_400(fixed, encoding, body):
    code, text = raw(fixed.url, body, headers={"Content-Encoding": encoding})
    err = json.loads(text)["error"]
    assert code == 400 and err["type"] == "invalid_request_error", text


def test_a_deflate_body_cut_short_is_a_4xx(fixed):
    """aiohttp finds a deflate stream cut short only at its end: when the body comes in the segment of the headers its
    parser refuses it (400); when the handler already waits for the body, the handler gets neither data nor an error
    and the body timeout answers (408 after 10 s). Either way the client is told, in JSON; nothing is a 5xx."""
    code, text = raw(fixed.url, zlib.compress(b'{"prompt": "x", "max_tokens": 1}')[:-6], headers={"Content-Encoding": "deflate"})
    assert code in (400, 408) and json.loads(text)["error"]["type"] == "invalid_request_error", text


def test_a_compressed_body_that_decodes_is_served(fixed):
    code, text = raw(fixed.url, zlib.compress(json.dumps({"prompt": prompt(30), "max_tokens": 1}).encode()), headers={"Content-Encoding": "deflate"})
    assert code == 200, text


H = b"Host: x\r\n"
# Requests aiohttp's HTTP parser refuses before any handler runs (aiohttp/_http_parser.pyx, http_parser.py).
MALFORMED = {
    "garbage request line": b"GARBAGE\r\n\r\n",
    "method with a bad character": b"G@T / HTTP/1.1\r\n" + H + b"\r\n",
    "unknown HTTP version": b"GET / HTTP/9.9\r\n" + H + b"\r\n",
    "version not HTTP": b"GET / FTP/1.1\r\n" + H + b"\r\n",
    "header without a colon": b"GET /health HTTP/1.1\r\n" + H + b"NoColonHere\r\n\r\n",
    "space in a header name": b"GET /health HTTP/1.1\r\n" + H + b"Bad Name: x\r\n\r\n",
    "space before the colon": b"GET /health HTTP/1.1\r\n" + H + b"X-Thing : x\r\n\r\n",
    "Content-Length not a number": b"POST /v1/completions HTTP/1.1\r\n" + H + b"Content-Length: abc\r\n\r\n",
    "negative Content-Length": b"POST /v1/completions HTTP/1.1\r\n" + H + b"Content-Length: -5\r\n\r\n",
    "two Content-Lengths": b"POST /v1/completions HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    "Content-Length with chunked": b"POST /v1/completions HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "unknown Transfer-Encoding": b"POST /v1/completions HTTP/1.1\r\n" + H + b"Transfer-Encoding: rot13\r\n\r\n",
    "bad chunk size": b"POST /v1/completions HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "obsolete line folding": b"GET /health HTTP/1.1\r\n" + H + b"X-Long: a\r\n folded\r\n\r\n",
    "NUL in a header value": b"GET /health HTTP/1.1\r\n" + H + b"X-Nul: a\x00b\r\n\r\n",
    "header line too long": b"GET /health HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 20000 + b"\r\n\r\n",
    "request line too long": b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n",
    "space inside the target": b"GET /a b HTTP/1.1\r\n" + H + b"\r\n",
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_the_parsers_own_errors_are_openai_json(fixed, name):
    [(status, headers, body)] = exchange(fixed, MALFORMED[name])
    assert 400 <= status < 500, (status, body)
    assert headers.get("content-type", "").startswith("application/json"), (headers, body)
    err = json.loads(body)["error"]
    assert err["type"] == "invalid_request_error" and err["message"].startswith("bad request"), err


def test_a_client_leaving_mid_stream_is_one_info_line(fixed):
    before = fixed.metric("disagg_requests_aborted_total")
    host, port = address(fixed)
    body = json.dumps({"prompt": prompt(200, "leave "), "max_tokens": 2000, "stream": True}).encode()
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        assert b"data: " in sock.recv(65536) or b"data: " in sock.recv(65536)  # the stream runs
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset, as a killed client does
    wait_for(lambda: fixed.metric("disagg_requests_aborted_total") == before + 1, 10, "the abort counted")
    time.sleep(0.5)
    log = (fixed.log_dir / "frontend.log").read_text()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
    assert len([line for line in log.splitlines() if "went away mid-stream" in line and " INFO " in line]) == 1
