"""Streamable-HTTP transport security, with real HTTP requests against a running server.

Covers: refusing to bind beyond loopback without a bearer token; the bearer token on
every request (compared in constant time); Host (421) and Origin (403) checks against
DNS rebinding; request bodies capped while streaming (413) without buffering them whole;
the 4o webhook route's own token. Only loopback addresses are ever sent traffic.
"""

from __future__ import annotations

import inspect
import os
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from conftest import CANARY_KEY, make_server_settings, serve_http
from pydantic import SecretStr

from ttapi_mcp.emulator import Emulator, EmulatorServer
from ttapi_mcp.server import http as server_http

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "sec-token-0b7e4c29f1d84a6a"
MIB = 1024 * 1024
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {},
    "clientInfo": {"name": "security-test", "version": "1"}}}
MCP_HEADERS = {"Content-Type": "application/json",
               "Accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def emulator_server() -> Iterator[EmulatorServer]:
    """An emulator for this module alone (the `emulator` fixture resets it per test).

    These tests count requests and queue faults; a request from a server another test
    left finishing in the background must not land in their log or take their fault.
    """
    with EmulatorServer(Emulator(), host="127.0.0.1", port=0) as server:
        yield server


@contextmanager
def running(settings: Any) -> Iterator[tuple[str, int]]:
    """The real HTTP app on uvicorn in a thread; yields (base URL, port) on 127.0.0.1."""
    with serve_http(settings) as origin:
        yield origin, int(origin.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def token_server(
    emulator_server: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int]]:
    """One server with a bearer token for the module (bound to loopback)."""
    settings = make_server_settings(emulator_server.base_url, tmp_path_factory.mktemp("tok"),
                                    http_bearer_token=SecretStr(TOKEN))
    with running(settings) as where:
        yield where


@pytest.fixture(scope="module")
def plain_server(
    emulator_server: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int]]:
    """One server without a token for the module (loopback: Host/Origin checks only)."""
    settings = make_server_settings(emulator_server.base_url, tmp_path_factory.mktemp("plain"))
    with running(settings) as where:
        yield where


def post_mcp(base: str, headers: dict[str, str] | None = None) -> httpx2.Response:
    return httpx2.post(f"{base}/mcp", json=INIT, headers={**MCP_HEADERS, **(headers or {})},
                       timeout=10)


# -- binding ------------------------------------------------------------------------------


def _env(emulator: Emulator, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTAPI_")}
    env.update({"PYTHONPATH": str(ROOT), "TTAPI_BASE_URL": str(emulator.base_url),
                "TTAPI_API_KEY": CANARY_KEY, "TTAPI_OUTPUT_DIR": str(tmp_path / "out"),
                "TTAPI_DATABASE_PATH": str(tmp_path / "db.sqlite3")})
    env.update(extra)
    return env


@pytest.mark.parametrize("how", ["flag-any-v4", "flag-any-v6", "flag-lan-address", "env-any"])
def test_binding_beyond_loopback_without_token_refuses_to_start(
    emulator: Emulator, tmp_path: Path, how: str
) -> None:
    # The process must refuse before binding anything: no traffic goes to these addresses.
    args = [sys.executable, "-m", "ttapi_mcp", "serve", "--transport", "http", "--port", "0"]
    extra: dict[str, str] = {}
    if how == "env-any":
        extra["TTAPI_HTTP_HOST"] = "0.0.0.0"
    else:
        host = {"flag-any-v4": "0.0.0.0", "flag-any-v6": "::",
                "flag-lan-address": "192.168.77.5"}[how]
        args += ["--host", host]
    proc = subprocess.run(args, env=_env(emulator, tmp_path, **extra), capture_output=True,
                          timeout=30, cwd="/")
    assert proc.returncode == 2, proc.stderr
    stderr = proc.stderr.decode()
    assert "Refusing to serve HTTP" in stderr and "http_bearer_token" in stderr
    assert "TTAPI_HTTP_BEARER_TOKEN" in stderr
    assert proc.stdout == b"" and "Uvicorn running" not in stderr
    assert CANARY_KEY not in stderr
    assert emulator.api_requests() == []


def test_a_public_address_in_front_of_loopback_needs_sign_in() -> None:
    from ttapi_mcp.config import Settings

    public = Settings(public_base_url="https://images.example.com")
    problem = server_http.binding_problem(public)
    assert problem is not None and "http_bearer_token" in problem and "oauth_issuer" in problem
    signed = public.model_copy(update={"http_bearer_token": SecretStr(TOKEN)})
    assert server_http.binding_problem(signed) is None
    local = Settings(public_base_url="http://127.0.0.1:8000")
    assert server_http.binding_problem(local) is None


def test_loopback_binding_needs_no_token() -> None:
    from ttapi_mcp.config import Settings

    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert server_http.binding_problem(Settings(http_host=host)) is None, host
    for host in ("0.0.0.0", "::", "10.1.2.3", "example.com"):
        assert server_http.binding_problem(Settings(http_host=host)) is not None, host
        with_token = Settings(http_host=host, http_bearer_token=SecretStr(TOKEN))
        assert server_http.binding_problem(with_token) is None, host


# -- bearer token ---------------------------------------------------------------------------


def test_token_is_compared_in_constant_time() -> None:
    # An ordinary comparison stops at the first differing byte, leaking the token by timing.
    source = inspect.getsource(server_http.BearerTokenMiddleware)
    uses = [line.strip() for line in source.splitlines() if "self._expected" in line
            and "self._expected =" not in line]
    assert uses and all("hmac.compare_digest(" in line for line in uses), uses


@pytest.mark.parametrize("given", [
    None, "", "Bearer", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}",
    f"bearer{TOKEN}", TOKEN, f"Basic {TOKEN}", f"Bearer {TOKEN.upper()}",
    "Bearer wrong-token-of-another-length",
])
def test_requests_without_the_right_token_get_401(
    emulator: Emulator, token_server: tuple[str, int], given: str | None
) -> None:
    base, _ = token_server
    headers = {} if given is None else {"Authorization": given}
    refused = post_mcp(base, headers)
    refused_get = httpx2.get(f"{base}/mcp", headers=headers, timeout=10)
    refused_delete = httpx2.delete(f"{base}/mcp", headers=headers, timeout=10)
    other_path = httpx2.get(f"{base}/anything", headers=headers, timeout=10)
    accepted = post_mcp(base, {"Authorization": f"Bearer {TOKEN}"})
    for response in (refused, refused_get, refused_delete, other_path):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert TOKEN not in response.text
    assert accepted.status_code == 200, accepted.text
    assert emulator.api_requests() == []


@pytest.mark.anyio
async def test_the_token_lets_a_real_client_work(emulator: Emulator, tmp_path: Path) -> None:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    emulator.options.job_seconds = 0.1
    settings = make_server_settings(emulator.base_url, tmp_path,
                                    http_bearer_token=SecretStr(TOKEN))
    with running(settings) as (base, _):
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http,
            Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client,
        ):
            result = await client.call_tool("generate_image", {
                "prompt": "a guarded owl", "model": "dall-e-2", "size": "256x256"})
    assert not result.is_error, result.content
    assert Path(result.structured_content["images"][0]["path"]).is_file()


# -- Host and Origin (DNS rebinding) ---------------------------------------------------------


@pytest.mark.parametrize(("headers", "status"), [
    ({"Host": "evil.example"}, 421),
    ({"Host": "evil.example:80"}, 421),
    ({"Host": "127.0.0.1.evil.example:80"}, 421),
    ({"Host": "localhost.evil.example"}, 421),
    ({"Origin": "https://evil.example"}, 403),
    ({"Origin": "http://localhost.evil.example:80"}, 403),
    ({"Origin": "http://127.0.0.1.nip.io:8000"}, 403),
    ({"Origin": "null"}, 403),
    ({"Origin": "http://localhost:5173"}, 200),
    ({"Origin": "http://127.0.0.1:3000"}, 200),
    ({"Host": "localhost:8000"}, 200),
])
def test_foreign_host_and_origin_are_refused(
    plain_server: tuple[str, int], headers: dict[str, str], status: int
) -> None:
    base, port = plain_server
    if headers.get("Host") == "localhost:8000":
        headers = {"Host": f"localhost:{port}"}
    answer = post_mcp(base, headers)
    stream = httpx2.get(f"{base}/mcp", headers={"Accept": "text/event-stream", **headers},
                        timeout=10)
    assert answer.status_code == status, answer.text
    if status != 200:
        assert stream.status_code == status


def test_host_and_origin_are_checked_behind_the_token(token_server: tuple[str, int]) -> None:
    # Bound to loopback with a token: a page that learned the token still cannot rebind.
    base, _ = token_server
    auth = {"Authorization": f"Bearer {TOKEN}"}
    host = post_mcp(base, {**auth, "Host": "evil.example"})
    origin = post_mcp(base, {**auth, "Origin": "https://evil.example"})
    assert (host.status_code, origin.status_code) == (421, 403)


# -- request body size -------------------------------------------------------------------


def _raw_request(port: int, head: str, body: Iterator[bytes], limit: int) -> tuple[bytes, int]:
    """Send a request by hand, stopping at the server's first reply byte (or at `limit`).

    Returns the reply's head and how many body bytes went out before the server answered.
    """
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(head.encode())
        for chunk in body:
            answered, _, _ = select.select([conn], [], [], 0)
            if answered or sent >= limit:
                break
            try:
                conn.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                break
            sent += len(chunk)
        reply = b""
        try:
            while b"\r\n\r\n" not in reply:
                data = conn.recv(65536)
                if not data:
                    break
                reply += data
        except (ConnectionResetError, TimeoutError):
            pass
    return reply, sent


def _chunks(total: int, size: int = 64 * 1024, chunked: bool = False) -> Iterator[bytes]:
    piece = b"x" * size
    for _ in range(total // size):
        yield (f"{size:x}\r\n".encode() + piece + b"\r\n") if chunked else piece


def test_a_declared_20_mb_body_is_refused_before_it_is_sent(plain_server: tuple[str, int]) -> None:
    base, port = plain_server
    head = (f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/json\r\nAccept: application/json, text/event-stream"
            f"\r\nContent-Length: {20 * MIB}\r\n\r\n")
    reply, sent = _raw_request(port, head, _chunks(20 * MIB), limit=20 * MIB)
    assert post_mcp(base).status_code == 200  # still serving
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert sent < 20 * MIB


def test_a_streamed_20_mb_body_is_cut_off_near_the_limit(plain_server: tuple[str, int]) -> None:
    # No Content-Length: the server must count while it reads and answer 413 before the
    # 20 MB are through (the SDK's limit is 4 MiB), instead of buffering it all.
    base, port = plain_server
    head = (f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/json\r\nAccept: application/json, text/event-stream"
            "\r\nTransfer-Encoding: chunked\r\n\r\n")
    reply, sent = _raw_request(port, head, _chunks(20 * MIB, chunked=True), limit=20 * MIB)
    assert post_mcp(base).status_code == 200
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    # The refusal came while the body was still flowing (socket buffers hold some MB).
    assert sent < 20 * MIB, "the server answered only after the whole body"


def test_an_oversized_body_without_the_token_is_refused_unread(
    token_server: tuple[str, int]
) -> None:
    _, port = token_server
    head = (f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {20 * MIB}\r\n\r\n")
    reply, sent = _raw_request(port, head, _chunks(20 * MIB), limit=20 * MIB)
    assert reply.startswith(b"HTTP/1.1 401"), reply[:200]
    assert sent < 20 * MIB


# -- webhook route ---------------------------------------------------------------------------


def test_webhook_route_checks_its_token(emulator: Emulator, tmp_path: Path) -> None:
    hooks = pytest.importorskip("ttapi_mcp.server.hooks",
                                reason="the 4o webhook route is not part of this build")
    prefix = str(hooks.HOOK_PREFIX)
    settings = make_server_settings(emulator.base_url, tmp_path,
                                    http_bearer_token=SecretStr(TOKEN),
                                    public_base_url="http://127.0.0.1:9")
    body = {"jobId": "5ecc5080-b1d7-4b9f-8184-435e46ebb5cb", "status": "SUCCESS"}
    with running(settings) as (base, _):
        url = f"{base}{prefix}made-up-hook-id"
        no_token = httpx2.post(url, json=body, timeout=10)
        wrong = httpx2.post(f"{url}?token=guessed", json=body, timeout=10)
        with_bearer = httpx2.post(f"{url}?token={TOKEN}", json=body, timeout=10,
                                  headers={"Authorization": f"Bearer {TOKEN}"})
        huge = httpx2.post(f"{url}?token=guessed", content=b"x" * (2 * MIB), timeout=10)
    for response in (no_token, wrong, with_bearer):
        assert response.status_code == 403, response.text
    assert huge.status_code in (403, 413)
    assert emulator.api_requests() == []  # a refused hook makes no upstream request


def test_the_public_name_passes_the_host_check_behind_a_proxy(
    emulator_server: EmulatorServer, tmp_path: Path
) -> None:
    # Bound to loopback behind a reverse proxy that keeps the Host header; a public
    # address needs sign-in (see the next test).
    settings = make_server_settings(emulator_server.base_url, tmp_path,
                                    public_base_url="https://images.example.com",
                                    http_bearer_token=SecretStr(TOKEN))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with running(settings) as (base, _):
        proxied = post_mcp(base, {"Host": "images.example.com",
                                  "Origin": "https://images.example.com", **auth})
        other = post_mcp(base, {"Host": "evil.example", **auth})
        other_origin = post_mcp(base, {"Host": "images.example.com",
                                       "Origin": "https://evil.example", **auth})
    assert proxied.status_code == 200, proxied.text
    assert (other.status_code, other_origin.status_code) == (421, 403)
