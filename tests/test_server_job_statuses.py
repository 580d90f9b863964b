"""Job statuses TTAPI documents in 2026 (PENDING_QUEUE) and ones it may invent stay
non-terminal through the tools: the job is polled on and collected, never failed."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import mcp_client

from ttapi_mcp.emulator import Emulator, Fault

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("status", ["PENDING_QUEUE", "QUEUED_FOR_A_RAINY_DAY"])
async def test_gpt4o_job_survives_queue_and_unknown_statuses(
    server_settings: Any, emulator: Emulator, client_mode: str, status: str
) -> None:
    emulator.options.job_seconds = 1.0
    emulator.add_fault(Fault(route="E5", job_status=status, count=2))
    async with mcp_client(server_settings, client_mode) as client:
        result = await client.call_tool("gpt4o_image", {"prompt": "draw a patient owl"})
    assert not result.is_error, result.content
    assert result.structured_content["status"] == "completed"
    shown = [r for r in emulator.api_requests("E5") if r.fault]
    assert len(shown) == 2
    assert len(emulator.api_requests("E5")) >= 3


async def test_fetch_job_reports_an_unknown_status_as_pending(
    server_settings: Any, emulator: Emulator
) -> None:
    emulator.options.job_seconds = 60
    async with mcp_client(server_settings) as client:
        submitted = await client.call_tool("gpt4o_image", {"prompt": "draw", "wait": False})
        job_id = submitted.structured_content["job_id"]
        emulator.add_fault(Fault(route="E5", job_status="SOMETHING_NEW"))
        fetched = await client.call_tool("fetch_job", {"job_id": job_id})
    assert not fetched.is_error, fetched.content
    assert fetched.structured_content["status"] == "pending"
    assert fetched.structured_content["job_status"] == "SOMETHING_NEW"
