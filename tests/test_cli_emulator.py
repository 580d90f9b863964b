"""`ttapi-mcp emulator` as a person would run it: a real process on a loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def emulator_process() -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ttapi_mcp", "emulator", "--host", "127.0.0.1", "--port",
         str(port), "--api-key", "only-this-key", "--job-seconds", "0"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx2.get(base + "/_emulator/log", timeout=1)
                break
            except httpx2.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("the emulator did not start") from None
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_emulator_command_serves_the_contract(emulator_process: str) -> None:
    body = {"prompt": "a kite", "model": "dall-e-2", "size": "256x256",
            "response_format": "b64_json"}
    url = emulator_process + "/v1/images/generations"
    refused = httpx2.post(url, json=body, headers={"TT-API-KEY": "another-key"}, timeout=10)
    assert refused.status_code == 401
    assert refused.json()["status"] == "FAILED"
    accepted = httpx2.post(url, json=body, headers={"TT-API-KEY": "only-this-key"}, timeout=10)
    assert accepted.status_code == 200
    assert accepted.json()["data"][0]["b64_json"]


def test_emulator_command_runs_4o_jobs_with_the_given_timing(emulator_process: str) -> None:
    headers = {"Authorization": "Bearer only-this-key"}
    submit = httpx2.post(emulator_process + "/openai/4o-image/generations",
                         json={"prompt": "draw a kite"}, headers=headers, timeout=10)
    job_id = submit.json()["data"]["job_id"]
    fetched = httpx2.get(emulator_process + "/openai/4o-image/fetch",
                         params={"jobId": job_id}, headers=headers, timeout=10)
    assert fetched.json()["status"] == "SUCCESS"  # --job-seconds 0
    image = httpx2.get(fetched.json()["data"]["imageUrl"], timeout=10)
    assert image.status_code == 200 and image.headers["content-type"].startswith("image/")
