"""Cancellation over real transports (issue 4, point 3).

mcp.Client cancels a call when the task awaiting it is cancelled (an anyio cancel
scope): the SDK's dispatcher then sends ``notifications/cancelled`` for the request
(shielded, so it goes out although the caller is being cancelled). Over stdio that
notification is written to the server's stdin in both protocol eras; over streamable
HTTP the legacy era POSTs it, while the 2026 era aborts the request's own POST (closing
its response stream is the cancellation there). Each test runs over all four.

* sent upstream: the call comes back before TTAPI answers, the job runs on, and
  fetch_job hands out its images, whole and as recorded;
* still queued behind the concurrency cap: the job is cancelled, TTAPI never sees it;
* still uploading (a 20 MB input, the emulator not yet reading the body): the upload is
  stopped, TTAPI never gets the whole request, nothing is saved.

What the server does with the cancel is checked on the wire too (raw JSON-RPC over
stdio): the cancelled call's progress stops and it is never answered, while its job runs on.
Whether a request was sent is read from the emulator's ``arrived`` list (its ``log``
holds a request only once answered).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import make_server_settings, serve_http
from PIL import Image
from test_long_work import Notes, assert_output_folder_whole, read_json
from test_server_transports import _server_env

from ttapi_mcp.emulator import Emulator

pytestmark = pytest.mark.anyio
TRANSPORTS = ["stdio", "stdio-legacy", "http", "http-legacy"]
DALLE2 = {"model": "dall-e-2", "size": "256x256", "response_format": "b64_json",
          "preview": "none"}
EDIT = {"prompt": "paint it over", "model": "gpt-image-1", "size": "1024x1024",
        "quality": "low", "preview": "none"}


@asynccontextmanager
async def connect(transport: str, emulator: Emulator, tmp_path: Path,
                  **settings: Any) -> AsyncIterator[Any]:
    """An mcp.Client on a real server: a ``serve`` subprocess over stdio, or uvicorn.

    Either way the server's database is ``tmp_path/db.sqlite3`` and its output folder
    ``tmp_path/out``; ``settings`` are Settings fields (TTAPI_* variables for stdio).
    """
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    mode = "legacy" if transport.endswith("-legacy") else "auto"
    settings.setdefault("progress_interval_seconds", 0.1)
    if transport.startswith("stdio"):
        extra = {f"TTAPI_{key.upper()}": (os.pathsep.join(map(str, value))
                                           if isinstance(value, list) else str(value))
                 for key, value in settings.items()}
        params = StdioServerParameters(command=sys.executable,
                                       args=["-m", "ttapi_mcp", "serve"],
                                       env=_server_env(emulator, tmp_path, **extra), cwd="/")
        with open(tmp_path / "stderr.log", "w") as errlog:
            async with Client(stdio_client(params, errlog=errlog), mode=mode) as client:
                yield client
    else:
        server_settings = make_server_settings(
            emulator.base_url, tmp_path, output_dir=tmp_path / "out",
            database_path=tmp_path / "db.sqlite3", **settings)
        with serve_http(server_settings) as origin:
            async with Client(f"{origin}/mcp", mode=mode) as client:
                yield client


async def call_and_cancel(client: Any, tool: str, args: dict[str, Any], notes: Notes,
                          ready: Callable[[], bool]) -> None:
    """Call ``tool`` and cancel the call (its awaiting task) as soon as ``ready()``.

    Returns once the cancelled call has come back; fails if the call answered instead.
    """
    answered: list[Any] = []
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:

            async def call() -> None:
                answered.append(await client.call_tool(tool, args, progress_callback=notes))

            tg.start_soon(call)
            while not ready():
                assert not answered, f"the call answered before it could be cancelled: " \
                                     f"{answered[0].content}"
                await anyio.sleep(0.02)
            tg.cancel_scope.cancel()
    assert not answered, "the call answered although it was cancelled"


async def job_row(client: Any, prompt: str) -> dict[str, Any]:
    """The job of ``prompt`` in the ``ttapi://jobs`` listing."""
    jobs = (await read_json(client, "ttapi://jobs"))["jobs"]
    (row,) = [j for j in jobs if j.get("prompt") == prompt]
    return dict(row)


async def settled(client: Any, job_id: str, seconds: float = 15.0) -> dict[str, Any]:
    """The job's resource once it is no longer running (bounded)."""
    with anyio.fail_after(seconds):
        while True:
            row = await read_json(client, f"ttapi://jobs/{job_id}")
            if row["status"] != "running":
                return dict(row)
            await anyio.sleep(0.05)


def image_rows(database: Path) -> dict[str, tuple[str, str, int]]:
    """id -> (path, sha256, bytes), straight from the server's SQLite."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as conn:
        rows = conn.execute("SELECT id, path, sha256, bytes FROM images").fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


# -- (a) sent upstream: completes in the background -------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_cancel_after_sending_returns_at_once_and_the_job_completes(
    emulator: Emulator, tmp_path: Path, transport: str
) -> None:
    emulator.options.latency_seconds = 1.5
    prompt = f"a paid heron over {transport}"
    notes = Notes()
    async with connect(transport, emulator, tmp_path) as client:
        await call_and_cancel(client, "generate_image", {"prompt": prompt, **DALLE2}, notes,
                              lambda: bool(emulator.arrived("E1")))
        # Back before TTAPI answered: the call did not wait for the upstream.
        assert emulator.api_requests("E1") == []
        listed = await job_row(client, prompt)
        job_id = listed["job_id"]
        assert job_id.startswith("local-") and listed["status"] == "running"

        with anyio.fail_after(20):
            while True:  # each fetch waits up to the budget
                fetched = await client.call_tool("fetch_job", {"job_id": job_id, "wait": True})
                assert not fetched.is_error, fetched.content
                if fetched.structured_content["status"] != "pending":
                    break
        row = await read_json(client, f"ttapi://jobs/{job_id}")
    result = fetched.structured_content
    assert result["status"] == "completed" and result["job_status"] == "succeeded", result
    assert row["status"] == "succeeded"
    assert [r.json["prompt"] for r in emulator.api_requests("E1")] == [prompt]
    assert emulator.api_requests("E1")[0].status == 200
    recorded = image_rows(tmp_path / "db.sqlite3")
    assert {i["id"] for i in result["images"]} == set(recorded) and recorded
    for image in result["images"]:
        path = Path(image["path"])
        data = path.read_bytes()
        assert recorded[image["id"]] == (str(path), hashlib.sha256(data).hexdigest(), len(data))
        with Image.open(path) as im:
            im.load()
            assert im.size == (256, 256)
    assert_output_folder_whole(tmp_path / "out")


# -- (b) queued behind the cap: stopped, never sent ---------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_cancel_while_queued_stops_the_job_before_ttapi(
    emulator: Emulator, tmp_path: Path, transport: str
) -> None:
    emulator.options.latency_seconds = 1.5
    first_prompt, second_prompt = "first in line", "second in line"
    first_notes, second_notes = Notes(), Notes()
    async with connect(transport, emulator, tmp_path, max_concurrent_requests=1) as client:
        first_result: list[Any] = []
        async with anyio.create_task_group() as tg:

            async def first() -> None:
                first_result.append(await client.call_tool(
                    "generate_image", {"prompt": first_prompt, **DALLE2},
                    progress_callback=first_notes))

            tg.start_soon(first)
            with anyio.fail_after(15):
                while not emulator.arrived("E1"):  # the one slot is taken
                    await anyio.sleep(0.02)
            await call_and_cancel(client, "generate_image", {"prompt": second_prompt, **DALLE2},
                                  second_notes, lambda: second_notes.saw("queued"))
            second = await job_row(client, second_prompt)
            row = await settled(client, second["job_id"])
            fetched = await client.call_tool("fetch_job", {"job_id": second["job_id"]})
        assert first_result and not first_result[0].is_error, first_result
        # The slot is free again and nothing else is waiting for it.
        again = await client.call_tool("generate_image", {"prompt": "third", **DALLE2})
    assert row["status"] == "cancelled" and "nothing was billed" in row["message"], row
    assert fetched.structured_content["job_status"] == "cancelled"
    assert not fetched.structured_content["images"]
    assert again.structured_content["status"] == "completed", again.content
    assert [r.json["prompt"] for r in emulator.arrived("E1")] == [first_prompt, "third"]
    assert_output_folder_whole(tmp_path / "out")


# -- (c) still uploading: stopped, never sent whole --------------------------------------


@pytest.fixture(scope="module")
def big_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~20 MB PNG of noise: far more than loopback buffers hold while nobody reads."""
    folder = tmp_path_factory.mktemp("inputs")
    side = 2560
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(
        folder / "noise.png", compress_level=0)
    return folder / "noise.png"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_cancel_during_an_edit_upload_stops_it(
    emulator: Emulator, tmp_path: Path, transport: str, big_input: Path
) -> None:
    # The emulator reads a request's body only after its latency: until then the upload
    # stalls with most of the 20 MB unsent.
    emulator.options.latency_seconds = 3.0
    size = big_input.stat().st_size
    notes = Notes()
    async with connect(transport, emulator, tmp_path, input_roots=[big_input.parent],
                       max_input_bytes=size + 1) as client:
        await call_and_cancel(client, "edit_image", {"images": [str(big_input)], **EDIT}, notes,
                              lambda: bool(emulator.arrived("E2")) and notes.saw("uploading:"))
        listed = await job_row(client, EDIT["prompt"])
        row = await settled(client, listed["job_id"])
        fetched = await client.call_tool("fetch_job", {"job_id": listed["job_id"]})
        with anyio.fail_after(15):  # the emulator answers once its latency is over
            while not emulator.api_requests("E2"):
                await anyio.sleep(0.05)
    assert row["status"] == "cancelled" and "nothing was billed" in row["message"], row
    assert fetched.structured_content["job_status"] == "cancelled"
    (request,) = emulator.api_requests("E2")
    assert request.status == 499 and not request.files  # it never got the whole body
    assert image_rows(tmp_path / "db.sqlite3") == {}
    out = tmp_path / "out"
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()]



# -- the server side of (a): the handler stops at once ------------------------------------


def test_server_stops_answering_a_cancelled_call_while_its_job_runs_on(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Raw JSON-RPC over a server's stdio: after ``notifications/cancelled`` the call's
    progress stops and it is never answered, while its job runs to the end."""
    import time

    from test_server_transports import stdio_server

    emulator.options.latency_seconds = 3.0
    env = _server_env(emulator, tmp_path, TTAPI_PROGRESS_INTERVAL_SECONDS="0.2",
                      TTAPI_LOG_LEVEL="WARNING", TTAPI_WAIT_BUDGET_SECONDS="10")
    with stdio_server(env) as server:
        server.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                      "clientInfo": {"name": "canceller", "version": "1"}})
        server.send("notifications/initialized", notify=True)
        call_id = server.send("tools/call", {
            "name": "generate_image", "arguments": {"prompt": "a raw cancel", **DALLE2},
            "_meta": {"progressToken": "tok"}})
        deadline = time.monotonic() + 15
        while not emulator.arrived("E1"):
            assert time.monotonic() < deadline, "the request never reached the emulator"
            time.sleep(0.02)
        server.send("notifications/cancelled", {"requestId": call_id, "reason": "user"},
                    notify=True)
        jobs = server.request("resources/read", {"uri": "ttapi://jobs"})
        job_id = json.loads(jobs["result"]["contents"][0]["text"])["jobs"][0]["job_id"]
        for _ in range(3):  # each waits up to the 10 s budget
            fetched = server.request("tools/call", {"name": "fetch_job", "arguments": {
                "job_id": job_id, "wait": True}})["result"]["structuredContent"]
            if fetched["status"] != "pending":
                break
    assert fetched["status"] == "completed", fetched
    assert not [m for m in server.lines if m.get("id") == call_id]
    notes = [m["params"].get("message", "") for m in server.lines
             if m.get("method") == "notifications/progress"
             and m["params"]["progressToken"] == "tok"]
    # A handler still waiting would tick every 0.2 s for the 3 s TTAPI takes (~15 notes)
    # and then report the saving; this one stopped when the cancel arrived.
    assert len(notes) <= 5, notes
    assert not [n for n in notes if "image 1 of 1" in n], notes
