"""Edit uploads are streamed from disk, not read whole into memory.

The emulator runs in a child process here, so that tracemalloc in this process measures the
client alone (the emulator itself reads uploads into memory).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from PIL import Image

from ttapi_mcp.api import EditRequest, TTAPIClient, UploadFile

ROOT = Path(__file__).resolve().parents[1]
SIDE = 2800  # RGB noise, stored uncompressed: about 23.5 MB, under the 25 MiB edit limit


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def child_emulator() -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ttapi_mcp", "emulator", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the emulator child process did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_large_edit_upload_is_streamed(child_emulator: str, tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    Image.frombytes("RGB", (SIDE, SIDE), os.urandom(SIDE * SIDE * 3)).save(
        big, format="PNG", compress_level=0
    )
    size = big.stat().st_size
    assert size > 20_000_000

    async def upload() -> int:
        async with TTAPIClient(child_emulator, "streaming-test-key") as api:
            result = await api.edit(
                EditRequest(prompt="make it calm", model="gpt-image-1", quality="low"),
                [UploadFile(big, "big.png", "image/png")],
            )
        return len(result.data)

    tracemalloc.start()
    try:
        count = anyio.run(upload)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 1
    assert peak < size / 4, f"peak {peak} B while uploading {size} B"
