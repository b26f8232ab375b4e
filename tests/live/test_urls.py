"""A URL that is no deployment is one line and exit 2 in every command that takes one, never a traceback (issue 21:
`disagg doctor --live notaurl` and `disagg load` against a server that is not a frontend both raised)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from disagg.runtime.supervisor import free_port


@pytest.fixture
def html_server():
    """A web server that answers every GET and POST with a page of HTML: something, but no OpenAI frontend."""

    class Page(BaseHTTPRequestHandler):
        def _page(self):
            body = b"<html><body>hello</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _page

        def log_message(self, *a):
            pass

    server = HTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def one_line_error(run) -> str:
    assert run.code == 2, (run.code, run.out, run.err)
    assert "Traceback" not in run.err and run.err.startswith("disagg: error: ") and run.err.count("\n") == 1, run.err
    return run.err


@pytest.mark.parametrize("command", [("doctor", "--live"), ("top",), ("load",)])
@pytest.mark.parametrize("url", ["notaurl", "ftp://127.0.0.1/x", "http://:80", "http://127.0.0.1:notaport"])
def test_a_string_that_is_no_url(cli, command, url):
    if command == ("top",):
        pytest.importorskip("textual")
    assert "URL" in one_line_error(cli(*command, url))


def test_load_against_a_server_that_is_no_frontend(cli, html_server):
    assert "serves no OpenAI completions" in one_line_error(cli("load", html_server, "--requests", "3"))


def test_load_against_a_closed_port(cli):
    assert "serves no OpenAI completions" in one_line_error(cli("load", f"http://127.0.0.1:{free_port()}", "--requests", "2"))


def test_live_against_a_server_that_is_no_frontend(cli, html_server):
    assert html_server in one_line_error(cli("doctor", "--live", html_server, "--duration", "1"))
