"""Long work (issue 4): local jobs, progress, cancellation, dedupe and limits.

Everything runs against the emulator over real HTTP, with its latency control making
calls slow, and small wait budgets so that "pending" happens within a second.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import make_server_settings, mcp_client
from PIL import Image

from ttapi_mcp.emulator import Emulator

pytestmark = pytest.mark.anyio

LOCAL_ID = re.compile(r"job (local-[a-z0-9]+)")
DALLE2 = {"model": "dall-e-2", "size": "256x256", "response_format": "b64_json",
          "preview": "none"}


class Notes:
    """Collects progress notifications of one call."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.values: list[float] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.values.append(progress)
        self.messages.append(message or "")

    def job_id(self) -> str | None:
        for message in self.messages:
            found = LOCAL_ID.search(message)
            if found:
                return found.group(1)
        return None

    def saw(self, text: str) -> bool:
        return any(text in m for m in self.messages)


async def wait_until(check: Any, seconds: float = 15.0) -> Any:
    """Poll ``check()`` (async) until it returns something truthy; bounded."""
    with anyio.fail_after(seconds):
        while True:
            value = await check()
            if value:
                return value
            await anyio.sleep(0.05)


async def read_json(client: Any, uri: str) -> Any:
    return json.loads((await client.read_resource(uri)).contents[0].text)


def assert_output_folder_whole(folder: Path) -> None:
    """Only complete images, no temporary files, in the output folder."""
    for path in folder.iterdir():
        if path.is_dir():
            continue
        assert not path.name.startswith("."), f"temporary file left: {path.name}"
        with Image.open(path) as im:
            im.load()


async def test_slow_generate_answers_pending_then_fetch_job_collects_it(
    emulator: Emulator, tmp_path: Path, client_mode: str
) -> None:
    emulator.options.latency_seconds = 1.0
    settings = make_server_settings(emulator.base_url, tmp_path, wait_budget_seconds=0.2)
    async with mcp_client(settings, client_mode) as client:
        first = await client.call_tool("generate_image", {"prompt": "a slow owl", **DALLE2})
        data = first.structured_content
        assert not first.is_error and data["status"] == "pending", first.content
        job_id = data["job_id"]
        assert job_id.startswith("local-")
        assert data["next_call"] == {"tool": "fetch_job",
                                     "arguments": {"job_id": job_id, "wait": True}}
        assert f"fetch_job(job_id='{job_id}'" in first.content[0].text
        # Recorded before the upstream answered, with its arguments.
        row = await read_json(client, f"ttapi://jobs/{job_id}")
        assert row["kind"] == "generate" and row["status"] == "running"
        assert row["request_args"]["prompt"] == "a slow owl"
        listed = await read_json(client, "ttapi://jobs")
        assert listed["jobs"][0]["job_id"] == job_id and listed["jobs"][0]["phase"]

        for _ in range(100):  # each call waits at most the 0.2 s budget
            done = await client.call_tool("fetch_job", {"job_id": job_id, "wait": True})
            assert not done.is_error, done.content
            if done.structured_content["status"] != "pending":
                break
        result = done.structured_content
        assert result["status"] == "completed" and result["job_status"] == "succeeded"
        assert Path(result["images"][0]["path"]).is_file()
        again = await client.call_tool("fetch_job", {"job_id": job_id})
        row = await read_json(client, f"ttapi://jobs/{job_id}")
    assert again.structured_content["images"] == result["images"]
    assert row["status"] == "succeeded" and row["image_uris"] == [result["images"][0]["uri"]]
    assert len(emulator.api_requests("E1")) == 1


async def test_finished_local_job_is_fetched_after_a_restart(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path)
    async with mcp_client(settings) as client:
        made = await client.call_tool("generate_image", {"prompt": "a kept cup", **DALLE2})
    job_id = made.structured_content["job_id"]
    assert job_id.startswith("local-")
    async with mcp_client(settings) as client:
        fetched = await client.call_tool("fetch_job", {"job_id": job_id})
    assert fetched.structured_content["images"] == made.structured_content["images"]
    assert fetched.structured_content["status"] == "completed"


async def test_validation_errors_come_back_at_once_without_a_job(
    server_settings: Any, emulator: Emulator
) -> None:
    async with mcp_client(server_settings) as client:
        bad = await client.call_tool("generate_image", {"prompt": "x", "model": "dall-e-3",
                                                        "n": 4})
        jobs = await read_json(client, "ttapi://jobs")
    assert bad.is_error and "not sent" in bad.content[0].text
    assert jobs["jobs"] == [] and emulator.api_requests() == []


async def test_failed_upstream_call_is_a_tool_error_and_a_failed_job(
    server_settings: Any, emulator: Emulator
) -> None:
    from ttapi_mcp.emulator import Fault

    emulator.add_fault(Fault(route="E1", status=402))
    async with mcp_client(server_settings) as client:
        result = await client.call_tool("generate_image", {"prompt": "x", **DALLE2})
        (row,) = (await read_json(client, "ttapi://jobs"))["jobs"]
        fetched = await client.call_tool("fetch_job", {"job_id": row["job_id"]})
    assert result.is_error and "402" in result.content[0].text
    assert row["status"] == "failed" and "402" in row["message"]
    assert fetched.structured_content["status"] == "failed"


async def test_progress_ticks_with_phases_while_waiting(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.options.latency_seconds = 1.0
    settings = make_server_settings(emulator.base_url, tmp_path,
                                    progress_interval_seconds=0.1)
    notes = Notes()
    async with mcp_client(settings) as client:
        result = await client.call_tool("generate_image", {"prompt": "a ticking clock",
                                                           **DALLE2}, progress_callback=notes)
    assert not result.is_error, result.content
    assert notes.saw("validating") and notes.saw("waiting for TTAPI")
    assert sum("waiting for TTAPI" in m for m in notes.messages) >= 3  # re-sent on the timer
    assert all("elapsed" in m for m in notes.messages)
    assert notes.values == sorted(notes.values) and len(set(notes.values)) == len(notes.values)


async def test_edit_progress_reports_uploaded_bytes(emulator: Emulator, tmp_path: Path) -> None:
    emulator.options.latency_seconds = 0.5
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.new("RGB", (512, 512), (10, 120, 200)).save(inputs / "photo.png")
    size = (inputs / "photo.png").stat().st_size
    settings = make_server_settings(emulator.base_url, tmp_path, input_roots=[inputs],
                                    progress_interval_seconds=0.1)
    notes = Notes()
    async with mcp_client(settings) as client:
        result = await client.call_tool("edit_image", {
            "prompt": "make it red", "images": [str(inputs / "photo.png")],
            "model": "gpt-image-1", "size": "1024x1024", "quality": "low", "preview": "none",
        }, progress_callback=notes)
    assert not result.is_error, result.content
    assert notes.saw(f"uploaded {size} of {size} bytes")
    assert notes.saw("validating the input images")


# -- cancellation -------------------------------------------------------------------------


async def _cancel_after_job_starts(client: Any, args: dict[str, Any], notes: Notes,
                                   phase: str) -> None:
    """Call generate_image and cancel the call once its progress shows ``phase``."""
    async with anyio.create_task_group() as tg:

        async def call() -> None:
            await client.call_tool("generate_image", args, progress_callback=notes)
            pytest.fail("the call should have been cancelled")

        async def cancel_when_seen() -> None:
            await wait_until(lambda: _async(notes.saw(phase)))
            tg.cancel_scope.cancel()

        tg.start_soon(call)
        tg.start_soon(cancel_when_seen)


async def _async(value: Any) -> Any:
    return value


async def test_cancelled_call_after_sending_completes_in_the_background(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.options.latency_seconds = 1.0
    settings = make_server_settings(emulator.base_url, tmp_path,
                                    progress_interval_seconds=0.05)
    notes = Notes()
    async with mcp_client(settings) as client:
        with anyio.fail_after(0.9):  # the tool returns at once, long before TTAPI answers
            await _cancel_after_job_starts(client, {"prompt": "a paid cat", **DALLE2}, notes,
                                           "waiting for TTAPI")
        job_id = notes.job_id()
        assert job_id is not None

        async def finished() -> Any:
            row = await read_json(client, f"ttapi://jobs/{job_id}")
            return row if row["status"] != "running" else None

        row = await wait_until(finished)
        fetched = await client.call_tool("fetch_job", {"job_id": job_id})
    assert row["status"] == "succeeded", row
    assert fetched.structured_content["status"] == "completed"
    assert Path(fetched.structured_content["images"][0]["path"]).is_file()
    assert len(emulator.api_requests("E1")) == 1
    assert_output_folder_whole(settings.output_dir)


async def test_cancelled_call_still_queued_is_stopped_and_never_sent(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.options.latency_seconds = 1.0
    settings = make_server_settings(emulator.base_url, tmp_path, max_concurrent_requests=1,
                                    progress_interval_seconds=0.05)
    first_notes, second_notes = Notes(), Notes()
    async with mcp_client(settings) as client, anyio.create_task_group() as tg:
        first_result: list[Any] = []

        async def first() -> None:
            first_result.append(await client.call_tool(
                "generate_image", {"prompt": "first in line", **DALLE2},
                progress_callback=first_notes))

        tg.start_soon(first)
        await wait_until(lambda: _async(first_notes.saw("waiting for TTAPI")))
        await _cancel_after_job_starts(client, {"prompt": "second in line", **DALLE2},
                                       second_notes, "queued")
        second_id = second_notes.job_id()
        assert second_id is not None

        async def cancelled() -> Any:
            row = await read_json(client, f"ttapi://jobs/{second_id}")
            return row if row["status"] != "running" else None

        row = await wait_until(cancelled)
        await wait_until(lambda: _async(first_result))
    assert row["status"] == "cancelled" and "nothing was billed" in row["message"]
    assert not first_result[0].is_error
    prompts = [r.json["prompt"] for r in emulator.api_requests("E1")]
    assert prompts == ["first in line"]


# -- duplicate calls ----------------------------------------------------------------------


async def test_retry_after_timeout_attaches_to_the_running_job(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.options.latency_seconds = 1.5
    settings = make_server_settings(emulator.base_url, tmp_path, wait_budget_seconds=0.8)
    args = {"prompt": "a retried fox", **DALLE2}
    async with mcp_client(settings) as client:
        first = await client.call_tool("generate_image", args)
        assert first.structured_content["status"] == "pending"
        retry = await client.call_tool("generate_image", args)  # the agent's retry
        assert retry.structured_content["status"] == "completed", retry.content
        fetched = await client.call_tool("fetch_job",
                                         {"job_id": first.structured_content["job_id"]})
        # After the job ended (window 0), an identical call is a new request.
        emulator.options.latency_seconds = 0
        later = await client.call_tool("generate_image", args)
    assert retry.structured_content["job_id"] == first.structured_content["job_id"]
    assert retry.structured_content["images"] == fetched.structured_content["images"]
    assert later.structured_content["job_id"] != first.structured_content["job_id"]
    assert len(emulator.api_requests("E1")) == 2


async def test_dedupe_can_be_refused_and_has_a_window(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path, dedupe_window_seconds=60)
    args = {"prompt": "a windowed fox", **DALLE2}
    async with mcp_client(settings) as client:
        first = await client.call_tool("generate_image", args)
        again = await client.call_tool("generate_image", args)
        fresh = await client.call_tool("generate_image", {**args, "dedupe": False})
        other = await client.call_tool("generate_image", {**args, "prompt": "a cat"})
    assert again.structured_content["images"] == first.structured_content["images"]
    assert "identical call" in (again.structured_content["message"] or "")
    assert fresh.structured_content["images"] != first.structured_content["images"]
    assert other.structured_content["images"] != first.structured_content["images"]
    assert len(emulator.api_requests("E1")) == 3


async def test_identical_edit_by_content_attaches(emulator: Emulator, tmp_path: Path) -> None:
    emulator.options.latency_seconds = 1.0
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.new("RGB", (256, 256), (200, 40, 40)).save(inputs / "a.png")
    (inputs / "b.png").write_bytes((inputs / "a.png").read_bytes())  # same bytes, new name
    settings = make_server_settings(emulator.base_url, tmp_path, input_roots=[inputs])
    base = {"prompt": "make it blue", "model": "gpt-image-1", "size": "1024x1024",
            "quality": "low", "preview": "none"}
    async with mcp_client(settings) as client:
        results: list[Any] = []

        async def edit(name: str) -> None:
            results.append(await client.call_tool(
                "edit_image", {**base, "images": [str(inputs / name)]}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(edit, "a.png")
            await anyio.sleep(0.3)
            tg.start_soon(edit, "b.png")
    assert [r.structured_content["status"] for r in results] == ["completed", "completed"]
    assert results[0].structured_content["job_id"] == results[1].structured_content["job_id"]
    assert len(emulator.api_requests("E2")) == 1


# -- limits --------------------------------------------------------------------------------


async def test_concurrency_cap_queues_calls_in_order(emulator: Emulator, tmp_path: Path) -> None:
    emulator.options.latency_seconds = 0.5
    settings = make_server_settings(emulator.base_url, tmp_path, max_concurrent_requests=1,
                                    progress_interval_seconds=0.05)
    notes = [Notes() for _ in range(3)]
    results: dict[int, Any] = {}
    async with mcp_client(settings) as client:

        async def call(i: int) -> None:
            results[i] = await client.call_tool(
                "generate_image", {"prompt": f"call {i}", **DALLE2}, progress_callback=notes[i])

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, 0)
            await wait_until(lambda: _async(notes[0].saw("waiting for TTAPI")))
            tg.start_soon(call, 1)
            await wait_until(lambda: _async(notes[1].saw("queued")))
            tg.start_soon(call, 2)
            await wait_until(lambda: _async(notes[2].saw("queued")))
        jobs = (await read_json(client, "ttapi://jobs"))["jobs"]
    assert all(not r.is_error for r in results.values())
    assert notes[2].saw("1 call(s) ahead")
    assert [r.json["prompt"] for r in emulator.api_requests("E1")] == ["call 0", "call 1",
                                                                       "call 2"]
    assert [j["status"] for j in jobs] == ["succeeded"] * 3
