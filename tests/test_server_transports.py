"""Real transports: a stdio subprocess read strictly, streamable HTTP on uvicorn, the demo.

Also the canary: the API key appears in no result, resource, prompt, error or log line.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from conftest import CANARY_KEY, make_server_settings, serve_http
from pydantic import SecretStr

from ttapi_mcp.emulator import Emulator

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "http-token-5d1c9e7a3b"


def _server_env(emulator: Emulator, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTAPI_")}
    env.update({
        "PYTHONPATH": str(ROOT), "TTAPI_BASE_URL": str(emulator.base_url),
        "TTAPI_API_KEY": CANARY_KEY, "TTAPI_OUTPUT_DIR": str(tmp_path / "out"),
        "TTAPI_DATABASE_PATH": str(tmp_path / "db.sqlite3"), "TTAPI_LOG_LEVEL": "DEBUG",
        "TTAPI_POLL_FIRST_DELAY": "0.05", "TTAPI_POLL_INTERVAL": "0.05",
    })
    env.update(extra)
    return env


class StrictStdio:
    """Talks JSON-RPC to a server process; fails on any stdout line that is not JSON-RPC."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.lines: list[dict[str, Any]] = []
        self._next_id = 0

    def send(self, method: str, params: dict[str, Any] | None = None,
             notify: bool = False) -> int | None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        msg_id = None
        if not notify:
            self._next_id += 1
            msg_id = message["id"] = self._next_id
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        self.proc.stdin.flush()
        return msg_id

    def request(self, method: str, params: dict[str, Any] | None = None,
                timeout: float = 30.0) -> dict[str, Any]:
        msg_id = self.send(method, params)
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if not ready:
                continue
            raw = self.proc.stdout.readline()
            assert raw, "the server closed stdout"
            try:
                message = json.loads(raw)
            except ValueError:
                pytest.fail(f"non-JSON line on stdout: {raw[:200]!r}")
            assert isinstance(message, dict) and message.get("jsonrpc") == "2.0", raw[:200]
            self.lines.append(message)
            if message.get("id") == msg_id:
                return message
        pytest.fail(f"no answer to {method} within {timeout} s")


@contextmanager
def stdio_server(env: dict[str, str]) -> Iterator[StrictStdio]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ttapi_mcp", "serve"], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd="/",
    )
    try:
        yield StrictStdio(proc)
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_stdio_carries_only_protocol_and_never_the_key(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.options.job_seconds = 0.1
    env = _server_env(emulator, tmp_path)
    with stdio_server(env) as server:
        init = server.request("initialize", {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "strict", "version": "1"}})
        assert init["result"]["serverInfo"]["name"] == "ttapi-mcp"
        server.send("notifications/initialized", notify=True)
        tools = server.request("tools/list")
        assert len(tools["result"]["tools"]) == 4
        ok = server.request("tools/call", {"name": "generate_image", "arguments": {
            "prompt": "a stdio fox", "model": "dall-e-2", "size": "256x256"}})
        assert not ok["result"].get("isError"), ok
        path = Path(ok["result"]["structuredContent"]["images"][0]["path"])
        assert path.is_file()
        bad = server.request("tools/call", {"name": "generate_image", "arguments": {
            "prompt": "x", "model": "dall-e-3", "n": 4}})
        assert bad["result"]["isError"]
        job = server.request("tools/call", {"name": "gpt4o_image", "arguments": {
            "prompt": "draw a stdio boat"}})
        assert job["result"]["structuredContent"]["status"] == "completed"
        listed = server.request("resources/list")
        image_uri = ok["result"]["structuredContent"]["images"][0]["uri"]
        read = server.request("resources/read", {"uri": image_uri})
        prompt = server.request("prompts/get", {"name": "poster", "arguments": {
            "subject": "s", "headline": "h"}})
        missing = server.request("resources/read", {"uri": "ttapi://images/nope"})
        assert "error" in missing
        proc = server.proc
    assert proc.stderr is not None
    stderr = proc.stderr.read().decode(errors="replace")
    assert "ttapi_mcp" in stderr  # the logs are there, on stderr
    everything = json.dumps(server.lines) + stderr
    for doc in (listed, read, prompt):
        assert "result" in doc
    assert CANARY_KEY not in everything
    assert CANARY_KEY not in "".join(
        p.read_text(errors="replace") for p in (tmp_path / "out").glob("*") if p.is_file()
        and p.suffix not in (".png", ".jpg", ".webp"))


@pytest.mark.anyio
async def test_stdio_with_the_sdk_client(emulator: Emulator, tmp_path: Path) -> None:
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "ttapi_mcp", "serve"],
        env=_server_env(emulator, tmp_path))
    with open(tmp_path / "stderr.log", "w") as errlog:
        from mcp.client.stdio import stdio_client

        async with Client(stdio_client(params, errlog=errlog)) as client:
            result = await client.call_tool("generate_image", {
                "prompt": "a stdio owl", "model": "dall-e-2", "size": "256x256"})
            resources = await client.list_resources()
    assert not result.is_error, result.content
    uri = result.structured_content["images"][0]["uri"]
    assert uri in [str(r.uri) for r in resources.resources]
    assert CANARY_KEY not in (tmp_path / "stderr.log").read_text()


def test_stdio_without_a_key_starts_and_explains(emulator: Emulator, tmp_path: Path) -> None:
    env = _server_env(emulator, tmp_path)
    del env["TTAPI_API_KEY"]
    with stdio_server(env) as server:
        server.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                      "clientInfo": {"name": "strict", "version": "1"}})
        server.send("notifications/initialized", notify=True)
        assert len(server.request("tools/list")["result"]["tools"]) == 4
        answer = server.request("tools/call", {"name": "gpt4o_image",
                                               "arguments": {"prompt": "draw"}})
    text = answer["result"]["content"][0]["text"]
    assert answer["result"]["isError"] and "TTAPI_API_KEY" in text and "api_key" in text
    assert emulator.api_requests() == []


# -- streamable HTTP ---------------------------------------------------------------------


@contextmanager
def http_server(settings: Any) -> Iterator[str]:
    """The real HTTP app on a random loopback port; yields its /mcp URL."""
    with serve_http(settings) as origin:
        yield origin + "/mcp"


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_streamable_http_end_to_end(server_settings: Any, mode: str) -> None:
    from mcp import Client

    with http_server(server_settings) as url:
        async with Client(url, mode=mode) as client:
            result = await client.call_tool("generate_image", {
                "prompt": "an http heron", "model": "dall-e-2", "size": "256x256"})
            read = await client.read_resource(result.structured_content["images"][0]["uri"])
    assert not result.is_error, result.content
    assert read.contents[0].mime_type == "image/png"


def _initialize(url: str, headers: dict[str, str]) -> httpx2.Response:
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}}
    base = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    return httpx2.post(url, json=body, headers={**base, **headers}, timeout=10)


def test_http_checks_host_and_origin(server_settings: Any) -> None:
    with http_server(server_settings) as url:
        assert _initialize(url, {}).status_code == 200
        assert _initialize(url, {"Host": "evil.example:80"}).status_code == 421
        assert _initialize(url, {"Origin": "https://evil.example"}).status_code == 403
        assert _initialize(url, {"Origin": "http://localhost:5173"}).status_code == 200


@pytest.mark.anyio
async def test_http_bearer_token_is_required_when_configured(
    emulator: Emulator, tmp_path: Path
) -> None:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    settings = make_server_settings(emulator.base_url, tmp_path,
                                    http_bearer_token=SecretStr(TOKEN))
    with http_server(settings) as url:
        assert _initialize(url, {}).status_code == 401
        assert _initialize(url, {"Authorization": "Bearer wrong"}).status_code == 401
        assert _initialize(url, {"Authorization": TOKEN}).status_code == 401
        assert httpx2.get(url.removesuffix("/mcp") + "/", timeout=10).status_code == 401
        assert _initialize(url, {"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with (
            httpx2.AsyncClient(headers=headers) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            tools = await client.list_tools()
    assert len(tools.tools) == 4


def test_http_beyond_loopback_without_token_refuses_to_start(
    emulator: Emulator, tmp_path: Path
) -> None:
    env = _server_env(emulator, tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "ttapi_mcp", "serve", "--transport", "http",
         "--host", "0.0.0.0", "--port", "0"],
        env=env, capture_output=True, timeout=30)
    assert proc.returncode == 2
    assert b"http_bearer_token" in proc.stderr and proc.stdout == b""


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTAPI_")}
    env.update(PYTHONPATH=str(ROOT), TTAPI_OUTPUT_DIR=str(tmp_path / "demo"))
    proc = subprocess.run([sys.executable, "-m", "ttapi_mcp", "demo", "a tiny robot"],
                          env=env, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    saved = [line.split(": ", 1)[1] for line in out.splitlines()
             if line.startswith("Saved image: ")]
    assert len(saved) == 1 and Path(saved[0]).is_file()
    assert Path(saved[0]).parent == (tmp_path / "demo").resolve()
    assert '"status": "completed"' in out
