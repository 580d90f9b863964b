"""Long work over real transports (issue 4): progress over stdio and streamable HTTP,
restart recovery after SIGKILL, and TTAPI's job hooks on a real HTTP server.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from conftest import make_server_settings, mcp_client, serve_http
from test_long_work import Notes, read_json, wait_until
from test_server_transports import StrictStdio, _server_env

from ttapi_mcp.emulator import Emulator

pytestmark = pytest.mark.anyio
DALLE2 = {"model": "dall-e-2", "size": "256x256", "response_format": "b64_json",
          "preview": "none"}


# -- progress -----------------------------------------------------------------------------


async def test_progress_reaches_a_stdio_client(emulator: Emulator, tmp_path: Path) -> None:
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    emulator.options.latency_seconds = 1.5
    env = _server_env(emulator, tmp_path, TTAPI_PROGRESS_INTERVAL_SECONDS="0.1")
    params = StdioServerParameters(command=sys.executable, args=["-m", "ttapi_mcp", "serve"],
                                   env=env, cwd="/")
    notes = Notes()
    with open(tmp_path / "stderr.log", "w") as errlog, anyio.fail_after(60):
        async with Client(stdio_client(params, errlog=errlog)) as client:
            result = await client.call_tool("generate_image", {"prompt": "a stdio clock",
                                                               **DALLE2},
                                            progress_callback=notes)
    assert not result.is_error, result.content
    assert sum("waiting for TTAPI" in m for m in notes.messages) >= 3, notes.messages
    assert notes.job_id() == result.structured_content["job_id"]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_progress_reaches_a_streamable_http_client(
    emulator: Emulator, tmp_path: Path, mode: str
) -> None:
    from mcp import Client

    emulator.options.latency_seconds = 1.5
    settings = make_server_settings(emulator.base_url, tmp_path, progress_interval_seconds=0.1)
    notes = Notes()
    with serve_http(settings) as origin:
        async with Client(f"{origin}/mcp", mode=mode) as client:
            result = await client.call_tool("generate_image", {"prompt": "an http clock",
                                                               **DALLE2},
                                            progress_callback=notes)
    assert not result.is_error, result.content
    assert sum("waiting for TTAPI" in m for m in notes.messages) >= 3, notes.messages


# -- restart ------------------------------------------------------------------------------


def _job_status(database: Path, kind: str) -> str | None:
    with sqlite3.connect(database, timeout=5) as conn:
        row = conn.execute("SELECT status FROM jobs WHERE kind = ?", (kind,)).fetchone()
    return row[0] if row else None


async def test_restart_after_sigkill_resumes_4o_jobs_and_flags_cut_off_local_jobs(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.options.latency_seconds = 1.0
    emulator.options.job_seconds = 2.0
    env = _server_env(emulator, tmp_path, TTAPI_LEASE_SECONDS="1")
    database = tmp_path / "db.sqlite3"
    proc = subprocess.Popen([sys.executable, "-m", "ttapi_mcp", "serve"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd="/")
    try:
        server = StrictStdio(proc)
        server.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                      "clientInfo": {"name": "killer", "version": "1"}})
        server.send("notifications/initialized", notify=True)
        submitted = server.request("tools/call", {"name": "gpt4o_image", "arguments": {
            "prompt": "draw a surviving ship", "wait": False}})
        job_id = submitted["result"]["structuredContent"]["job_id"]
        server.send("tools/call", {"name": "generate_image", "arguments": {
            "prompt": "a cut-off call", **DALLE2}})
        deadline = time.monotonic() + 15
        while _job_status(database, "generate") != "running":
            assert time.monotonic() < deadline, "the local job was never recorded"
            time.sleep(0.02)
        time.sleep(0.3)  # the request is on its way to TTAPI
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert _job_status(database, "generate") == "running"
    assert _job_status(database, "4o") == "SUBMITTED"
    time.sleep(1.2)  # the killed server's leases run out: its jobs are now anyone's

    emulator.options.latency_seconds = 0
    settings = make_server_settings(emulator.base_url, tmp_path, output_dir=tmp_path / "out",
                                    database_path=database)
    async with mcp_client(settings) as client:
        jobs = (await read_json(client, "ttapi://jobs"))["jobs"]
        local = next(j for j in jobs if j["kind"] == "generate")

        async def saved() -> Any:
            row = await read_json(client, f"ttapi://jobs/{job_id}")
            return row if row["image_uris"] else None

        row = await wait_until(saved)  # nobody asked: the restarted server polled by itself
        fetched = await client.call_tool("fetch_job", {"job_id": local["job_id"]})
    assert local["status"] == "interrupted"
    assert "may already have completed upstream and been billed" in local["message"]
    assert fetched.structured_content["job_status"] == "interrupted"
    assert row["status"] == "SUCCESS"
    assert len(emulator.api_requests("download")) == 1
    assert len(list((tmp_path / "out").glob("*.png"))) == 1


# -- hooks --------------------------------------------------------------------------------


def _hook_settings(emulator: Emulator, tmp_path: Path) -> Any:
    # Polling far too slow to finish these jobs in time: only the hook can.
    return make_server_settings(emulator.base_url, tmp_path, poll_first_delay=60,
                                poll_interval=60, poll_max_interval=60)


async def test_hook_completes_a_job_at_once_and_notifies_subscribers(
    emulator: Emulator, tmp_path: Path
) -> None:
    from mcp import Client

    emulator.options.job_seconds = 0.5
    with serve_http(_hook_settings(emulator, tmp_path), public=True) as origin:
        async with Client(f"{origin}/mcp") as client:
            submitted = await client.call_tool("gpt4o_image", {"prompt": "draw a hooked fish",
                                                               "wait": False})
            job_id = submitted.structured_content["job_id"]
            uri = f"ttapi://jobs/{job_id}"
            with anyio.fail_after(15):
                async with client.listen(resource_subscriptions=[uri]) as sub:
                    async for event in sub:
                        if getattr(event, "uri", None) == uri:
                            break
            row = await read_json(client, uri)
            fetched = await client.call_tool("fetch_job", {"job_id": job_id})
            waited = await client.call_tool("gpt4o_image", {"prompt": "draw a hooked eel"})
        (delivery, second) = emulator.hook_deliveries
        sent_hook = emulator.api_requests("E4")[0].json["hookUrl"]
        token = sent_hook.split("token=", 1)[1]
        replay = httpx2.post(delivery.url, json=delivery.body, timeout=10)
        wrong = httpx2.post(delivery.url.split("token=")[0] + "token=nope", json={}, timeout=10)
        unknown = httpx2.post(f"{origin}/hooks/4o/nope?token={token}", json={}, timeout=10)
        huge = httpx2.post(second.url, content=b"x" * (65 * 1024), timeout=10)
    assert sent_hook.startswith(f"{origin}/hooks/4o/") and len(token) >= 32
    assert delivery.status == 200 and second.status == 200
    assert row["status"] == "SUCCESS" and row["image_uris"]
    assert fetched.structured_content["status"] == "completed"
    assert waited.structured_content["status"] == "completed"  # long before the 60 s poll
    assert (replay.status_code, wrong.status_code, unknown.status_code) == (403, 403, 403)
    assert huge.status_code == 413
    assert len(emulator.api_requests("download")) == 2  # the replay changed nothing
    shown = json.dumps(row) + str(fetched.structured_content) + str(submitted.content)
    assert token not in shown and token not in (tmp_path / "db").joinpath(
        "store.sqlite3").read_bytes().decode(errors="replace")


async def test_callers_own_hook_url_wins(emulator: Emulator, tmp_path: Path) -> None:
    from mcp import Client

    emulator.options.job_seconds = 0.1
    theirs = "http://127.0.0.1:9/their-hook"
    with serve_http(_hook_settings(emulator, tmp_path), public=True) as origin:
        async with Client(f"{origin}/mcp") as client:
            await client.call_tool("gpt4o_image", {"prompt": "draw x", "hook_url": theirs,
                                                   "wait": False})
    assert emulator.api_requests("E4")[0].json["hookUrl"] == theirs


async def test_no_hook_over_stdio_or_without_public_base_url(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path,
                                    public_base_url="https://example.com")
    async with mcp_client(settings) as client:  # not HTTP: TTAPI could not reach us
        await client.call_tool("gpt4o_image", {"prompt": "draw y", "wait": False})
    assert "hookUrl" not in emulator.api_requests("E4")[0].json
