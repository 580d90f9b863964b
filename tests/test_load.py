"""Bounded load: 200 tool calls at concurrency 20 over streamable HTTP, 5% of them faulted.

A real server process (``ttapi-mcp serve --transport http`` on 127.0.0.1) talks to the
emulator; twenty real MCP clients call it at once. Every call must be answered (a result
or a tool error with a message), the server must stay up, every saved file must have the
sha256 its database row records, and the server's resident memory after the run must be
within 20% of its memory after a warm-up at the same concurrency.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from conftest import CANARY_KEY

from ttapi_mcp.emulator import Emulator, EmulatorServer, Fault

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def emulator_server() -> Iterator[EmulatorServer]:
    """An emulator for this module alone (the `emulator` fixture resets it per test).

    These tests count requests and queue faults; a request from a server another test
    left finishing in the background must not land in their log or take their fault.
    """
    with EmulatorServer(Emulator(), host="127.0.0.1", port=0) as server:
        yield server

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = 20
CALLS = 200
WARM_UP_CALLS = 20
FAULT_EVERY = 20  # one fault per 20 calls: 5% of the requests
FAULTS = itertools.cycle([  # what a busy gateway does; each applies to one request
    {"status": 503}, {"status": 500}, {"status": 429, "retry_after": "0"}, {"kind": "drop"},
    {"kind": "truncated_b64"}, {"status": 502}, {"kind": "malformed_json"}, {"status": 504},
    {"status": 402}, {"status": 200, "shape": "envelope", "message": "refused under load"},
])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server_process(emulator: Emulator, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes],
                                                                        str]]:
    """``ttapi-mcp serve --transport http`` as a child process; yields it and its /mcp URL."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTAPI_")}
    env.update({
        "PYTHONPATH": str(ROOT), "TTAPI_BASE_URL": str(emulator.base_url),
        "TTAPI_API_KEY": CANARY_KEY, "TTAPI_OUTPUT_DIR": str(tmp_path / "out"),
        "TTAPI_DATABASE_PATH": str(tmp_path / "db" / "store.sqlite3"),
        "TTAPI_RETRY_BASE_DELAY": "0.01", "TTAPI_RETRY_MAX_DELAY": "0.05",
        "TTAPI_LOG_LEVEL": "WARNING",
    })
    url = f"http://127.0.0.1:{port}/mcp"
    with open(tmp_path / "server.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ttapi_mcp", "serve", "--transport", "http",
             "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd="/",
        )
        try:
            deadline = time.monotonic() + 30
            while not _answers(url):
                assert proc.poll() is None, (tmp_path / "server.log").read_text()
                assert time.monotonic() < deadline, "the server did not start in 30 s"
                time.sleep(0.1)
            yield proc, url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        httpx2.get(url, timeout=1)
    except httpx2.TransportError:
        return False
    return True


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


def _arguments(number: int) -> dict[str, Any]:
    """Mostly cheap dall-e-2 calls; every tenth a gpt-image-1 call (bigger, base64)."""
    if number % 10 == 9:
        return {"prompt": f"load test {number}", "model": "gpt-image-1", "size": "1024x1024",
                "quality": "low", "preview": "thumbnail"}
    return {"prompt": f"load test {number}", "model": "dall-e-2", "size": "256x256",
            "response_format": "b64_json"}


class Outcomes:
    """What every call came back with."""

    def __init__(self) -> None:
        self.saved: list[dict[str, Any]] = []
        self.tool_errors: list[str] = []
        self.crashes: list[str] = []
        self.faults = 0


async def _run_calls(
    clients: list[Any], emulator: Emulator, count: int, first: int, outcomes: Outcomes,
    faulted: bool,
) -> None:
    """`count` calls spread over the clients, `len(clients)` at a time."""
    numbers = iter(range(first, first + count))

    async def worker(client: Any) -> None:
        for number in numbers:  # the shared iterator hands each number out once
            if faulted and number % FAULT_EVERY == 0:
                emulator.add_fault(Fault(route="E1", **next(FAULTS)))
                outcomes.faults += 1
            try:
                result = await client.call_tool("generate_image", _arguments(number))
            except Exception as exc:  # a protocol or transport failure: not an answer
                outcomes.crashes.append(f"call {number}: {type(exc).__name__}: {exc}")
                continue
            text = " ".join(getattr(b, "text", "") for b in result.content)
            if result.is_error:
                outcomes.tool_errors.append(text)
            else:
                outcomes.saved.extend(result.structured_content["images"])

    async with anyio.create_task_group() as tg:
        for client in clients:
            tg.start_soon(worker, client)


async def test_200_calls_at_concurrency_20_with_faults(emulator: Emulator, tmp_path: Path) -> None:
    from mcp import Client

    with server_process(emulator, tmp_path) as (proc, url):
        outcomes = Outcomes()
        with anyio.fail_after(90):
            async with AsyncExitStack() as stack:
                clients = [await stack.enter_async_context(Client(url))
                           for _ in range(CONCURRENCY)]
                await _run_calls(clients, emulator, WARM_UP_CALLS, 10_000, outcomes, False)
                warm = rss_bytes(proc.pid)
                await _run_calls(clients, emulator, CALLS, 0, outcomes, True)
                after = rss_bytes(proc.pid)
                # Still serving after the run, on a fresh session too.
                async with Client(url) as last:
                    final = await last.call_tool("generate_image", _arguments(1))
        assert proc.poll() is None, "the server process died"
    log = (tmp_path / "server.log").read_text(errors="replace")

    assert outcomes.crashes == []
    assert not final.is_error, final.content
    answered = len(outcomes.saved) + len(outcomes.tool_errors)
    assert answered == CALLS + WARM_UP_CALLS
    assert outcomes.faults == CALLS // FAULT_EVERY
    # A fault spoils at most the one call whose request it hit; retried ones spoil none.
    assert len(outcomes.tool_errors) <= outcomes.faults
    for text in outcomes.tool_errors:
        assert "TTAPI" in text and len(text) > 60, text
    assert CANARY_KEY not in log and "Traceback" not in log, log[-3000:]

    db = sqlite3.connect(tmp_path / "db" / "store.sqlite3")
    try:
        rows = dict(db.execute("SELECT id, sha256 FROM images").fetchall())
    finally:
        db.close()
    saved = [*outcomes.saved, *final.structured_content["images"]]
    assert len({image["id"] for image in saved}) == len(saved)
    for image in saved:
        data = Path(image["path"]).read_bytes()
        assert rows[image["id"]] == hashlib.sha256(data).hexdigest(), image["path"]
    assert len(rows) == len(saved)  # no row for an image nobody was told about

    assert after <= warm * 1.2, f"RSS grew from {warm >> 20} MiB to {after >> 20} MiB"
