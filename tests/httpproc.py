"""A real ``ttapi-mcp serve --transport http`` process for tests, on a loopback port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_process(env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    """``ttapi-mcp serve --transport http`` as a real process; yields its origin."""
    origin = f"http://127.0.0.1:{port}"
    with open(log, "wb") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ttapi_mcp", "serve", "--transport", "http",
             "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=errors, cwd="/")
        try:
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "server did not start"
                try:
                    if httpx2.get(f"{origin}/healthz", timeout=2).status_code == 200:
                        break
                except httpx2.HTTPError:
                    time.sleep(0.1)
            yield origin
        finally:
            proc.terminate()
            proc.wait(15)
