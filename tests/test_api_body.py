"""The answer's body is read whole, whatever Content-Length and Content-Encoding say.

A real HTTP server on loopback sends each shape of answer; the body is read the way the
client reads an API answer (one buffer, sized from Content-Length when that is exact).
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx2
import pytest

from ttapi_mcp.api.body import read_body

pytestmark = pytest.mark.anyio

PAYLOAD = b'{"data": [{"b64_json": "' + b"QUJD" * 50_000 + b'"}]}'


class Answers(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body, headers = PAYLOAD, {"Content-Type": "application/json"}
        if self.path == "/gzip":
            body = gzip.compress(PAYLOAD)
            headers["Content-Encoding"] = "gzip"
        if self.path == "/chunked":
            self.send_response(200)
            for name, value in {**headers, "Transfer-Encoding": "chunked"}.items():
                self.send_header(name, value)
            self.end_headers()
            for start in range(0, len(body), 70_000):
                piece = body[start:start + 70_000]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_response(200)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def base_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.mark.parametrize("path", ["/plain", "/gzip", "/chunked"])
async def test_the_whole_body_is_read(base_url: str, path: str) -> None:
    async with httpx2.AsyncClient(base_url=base_url) as http, http.stream("GET", path) as r:
        body = await read_body(r)
    assert bytes(body) == PAYLOAD
