"""GPT-4o image jobs: waiting with progress, pending then fetch_job, saving once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import make_server_settings, mcp_client

from ttapi_mcp.emulator import Emulator, Fault

pytestmark = pytest.mark.anyio


async def test_gpt4o_completes_while_waiting_with_progress(
    server_settings: Any, emulator: Emulator, client_mode: str
) -> None:
    emulator.options.job_seconds = 0.3
    notes: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        notes.append((progress, total, message))

    async with mcp_client(server_settings, client_mode) as client:
        result = await client.call_tool(
            "gpt4o_image", {"prompt": "draw a paper boat", "refer_images":
                            ["https://example.com/ref.png"]},
            progress_callback=on_progress)
    assert not result.is_error, result.content
    data = result.structured_content
    assert data["status"] == "completed" and data["job_status"] == "SUCCESS"
    assert data["quota"] == 2.0 and data["job_id"]
    (image,) = data["images"]
    assert Path(image["path"]).is_file() and image["source_url"]
    assert notes, "expected progress notifications while waiting"
    (submit,) = emulator.api_requests("E4")
    assert submit.json["referImages"] == ["https://example.com/ref.png"]
    assert len(emulator.api_requests("E5")) >= 2


async def test_gpt4o_pending_then_fetch_job_saves_once(
    emulator: Emulator, tmp_path: Path, client_mode: str
) -> None:
    emulator.options.job_seconds = 0.6
    settings = make_server_settings(emulator.base_url, tmp_path, wait_budget_seconds=0.1)
    async with mcp_client(settings, client_mode) as client:
        first = await client.call_tool("gpt4o_image", {"prompt": "draw a kite"})
        data = first.structured_content
        assert not first.is_error and data["status"] == "pending"
        job_id = data["job_id"]
        assert data["next_call"] == {"tool": "fetch_job",
                                     "arguments": {"job_id": job_id, "wait": True}}
        assert f"fetch_job(job_id='{job_id}'" in first.content[0].text
        # Recorded at submit time: the job resource exists before the image does.
        job_doc = await client.read_resource(f"ttapi://jobs/{job_id}")
        assert job_id in job_doc.contents[0].text

        for _ in range(100):  # each call waits at most the 0.1 s budget
            done = await client.call_tool("fetch_job", {"job_id": job_id, "wait": True})
            assert not done.is_error, done.content
            if done.structured_content["status"] != "pending":
                break
        assert done.structured_content["status"] == "completed"
        downloads = len(emulator.api_requests("download"))
        fetches = len(emulator.api_requests("E5"))
        assert downloads == 1

        again = await client.call_tool("fetch_job", {"job_id": job_id})
    assert again.structured_content["images"] == done.structured_content["images"]
    assert len(emulator.api_requests("download")) == downloads
    assert len(emulator.api_requests("E5")) == fetches


async def test_fetch_job_without_wait_reports_status(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.options.job_seconds = 5.0
    settings = make_server_settings(emulator.base_url, tmp_path)
    async with mcp_client(settings) as client:
        submitted = await client.call_tool("gpt4o_image", {"prompt": "draw a map", "wait": False})
        job_id = submitted.structured_content["job_id"]
        status = await client.call_tool("fetch_job", {"job_id": job_id})
    assert status.structured_content["status"] == "pending"
    assert status.structured_content["job_status"] in ("ON_QUEUE", "PENDING_QUEUE")


async def test_failed_job_gives_the_reason(server_settings: Any, emulator: Emulator) -> None:
    emulator.options.job_seconds = 0.1
    emulator.options.job_outcome = "failed"
    emulator.options.job_failure_message = "prompt rejected by the safety system"
    async with mcp_client(server_settings) as client:
        result = await client.call_tool("gpt4o_image", {"prompt": "draw something"})
        job_id = result.structured_content["job_id"]
        again = await client.call_tool("fetch_job", {"job_id": job_id})
    for res in (result, again):
        data = res.structured_content
        assert data["status"] == "failed" and data["job_status"] == "FAILED"
        assert data["message"] == "prompt rejected by the safety system"
        assert "safety system" in res.content[0].text
    assert emulator.api_requests("download") == []


async def test_fetch_job_works_for_a_job_submitted_elsewhere(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.options.job_seconds = 0.1
    elsewhere = make_server_settings(emulator.base_url, tmp_path / "a")
    here = make_server_settings(emulator.base_url, tmp_path / "b")
    async with mcp_client(elsewhere) as client:
        submitted = await client.call_tool("gpt4o_image", {"prompt": "draw a fish",
                                                           "wait": False})
    job_id = submitted.structured_content["job_id"]
    async with mcp_client(here) as client:
        result = await client.call_tool("fetch_job", {"job_id": job_id, "wait": True})
    assert not result.is_error, result.content
    path = Path(result.structured_content["images"][0]["path"])
    assert path.parent == here.output_dir.resolve()


async def test_unknown_job_is_a_clear_error(server_settings: Any) -> None:
    async with mcp_client(server_settings) as client:
        result = await client.call_tool(
            "fetch_job", {"job_id": "5ecc5080-b1d7-4b9f-8184-435e46ebb5cb"})
    assert result.is_error and "does not know job" in result.content[0].text


async def test_submit_failure_is_reported(server_settings: Any, emulator: Emulator) -> None:
    emulator.add_fault(Fault(route="E4", status=402))
    async with mcp_client(server_settings) as client:
        result = await client.call_tool("gpt4o_image", {"prompt": "draw a cat"})
    assert result.is_error and "402" in result.content[0].text
