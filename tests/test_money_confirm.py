"""Confirmation of expensive calls: MCP elicitation in both protocol eras, the
no-elicitation path with ``confirm_cost``, and bad ``confirm_cost`` values.

The SDK client's own elicitation callback answers; the emulator's request log shows
whether anything was sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import make_server_settings, mcp_client, serve_http
from mcp_types import ElicitResult

from ttapi_mcp.emulator import Emulator

HIGH = {"prompt": "a golden fox", "model": "gpt-image-1", "quality": "high",
        "size": "1024x1024", "preview": "none"}
"""16.7 quota with the default table."""
QUESTION = ("This will cost about 16.7 quota ($0.17): 1 image of 1024x1024 at high quality "
            "with gpt-image-1. Proceed?")


def answering(action: str | None, asked: list[str], proceed: bool = True) -> Any:
    async def callback(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        content = {"proceed": proceed} if action == "accept" else None
        return ElicitResult(action=action, content=content)  # type: ignore[arg-type]

    return callback


def text_of(result: Any) -> str:
    return str(result.content[0].text)


@pytest.mark.anyio
@pytest.mark.parametrize("action", ["accept", "decline", "cancel"])
async def test_elicitation_accept_sends_decline_and_cancel_do_not(
    emulator: Emulator, tmp_path: Path, client_mode: str, action: str
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path, confirm_above=10)
    asked: list[str] = []
    async with mcp_client(settings, client_mode,
                          elicitation_callback=answering(action, asked)) as client:
        result = await client.call_tool("generate_image", HIGH)
    assert asked == [QUESTION]
    if action == "accept":
        assert not result.is_error, result.content
        assert result.structured_content["cost"]["estimate_quota"] == 16.7
        assert len(emulator.api_requests("E1")) == 1
        return
    assert result.is_error
    word = "declined" if action == "decline" else "cancelled"
    assert word in text_of(result) and "nothing was sent" in text_of(result)
    assert emulator.api_requests() == []


@pytest.mark.anyio
async def test_accepting_with_proceed_false_sends_nothing(
    emulator: Emulator, tmp_path: Path, client_mode: str
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path, confirm_above=10)
    asked: list[str] = []
    async with mcp_client(settings, client_mode,
                          elicitation_callback=answering("accept", asked, False)) as client:
        result = await client.call_tool("generate_image", HIGH)
    assert result.is_error and "chose not to spend" in text_of(result)
    assert emulator.api_requests() == []


@pytest.mark.anyio
async def test_cheap_calls_and_unset_confirm_above_ask_nothing(
    emulator: Emulator, tmp_path: Path, client_mode: str
) -> None:
    asked: list[str] = []
    for index, above in enumerate((20.0, None)):
        settings = make_server_settings(emulator.base_url, tmp_path / str(index),
                                        confirm_above=above)
        async with mcp_client(settings, client_mode,
                              elicitation_callback=answering("decline", asked)) as client:
            result = await client.call_tool("generate_image", HIGH)
        assert not result.is_error, result.content
    assert asked == []
    assert len(emulator.api_requests("E1")) == 2


@pytest.mark.anyio
async def test_edit_and_gpt4o_calls_are_confirmed_too(
    emulator: Emulator, tmp_path: Path, client_mode: str
) -> None:
    emulator.options.job_seconds = 0.1
    settings = make_server_settings(emulator.base_url, tmp_path, confirm_above=1.5)
    asked: list[str] = []
    async with mcp_client(settings, client_mode,
                          elicitation_callback=answering("accept", asked)) as client:
        made = await client.call_tool("generate_image", {
            "prompt": "a base", "model": "dall-e-2", "size": "256x256", "preview": "none"})
        uri = made.structured_content["images"][0]["uri"]
        edited = await client.call_tool("edit_image", {
            "prompt": "add a hat", "images": [uri, uri], "model": "gpt-image-1",
            "quality": "low", "size": "1024x1024", "preview": "none"})
        job = await client.call_tool("gpt4o_image", {"prompt": "draw a confirmed job"})
    assert not edited.is_error and not job.is_error, (edited.content, job.content)
    assert asked == [
        "This will cost about 1.6 quota ($0.02): 1 image of 256x256 at standard quality "
        "with dall-e-2. Proceed?",
        "This will cost about 3.1 quota ($0.03): 1 image of 1024x1024 at low quality with "
        "gpt-image-1. Proceed?",
        "This will cost about 2 quota ($0.02): 1 image with gpt-4o-image. Proceed?",
    ]
    assert edited.structured_content["cost"]["estimate_quota"] == pytest.approx(3.1)
    assert job.structured_content["cost"]["estimate_quota"] == 2.0


@pytest.mark.anyio
async def test_without_elicitation_the_agent_is_told_to_ask_and_send_confirm_cost(
    emulator: Emulator, tmp_path: Path, client_mode: str
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path, confirm_above=10)
    async with mcp_client(settings, client_mode) as client:
        first = await client.call_tool("generate_image", HIGH)
        low = await client.call_tool("generate_image", {**HIGH, "confirm_cost": 10})
        junk = await client.call_tool("generate_image", {**HIGH, "confirm_cost": "ok"})
        job = await client.call_tool("gpt4o_image", {"prompt": "draw", "confirm_cost": True})
        assert emulator.api_requests() == []
        agreed = await client.call_tool("generate_image", {**HIGH, "confirm_cost": 16.7})
    assert first.is_error
    text = text_of(first)
    assert "nothing was billed" in text and "about 16.7 quota ($0.17)" in text
    assert "above confirm_above (10 quota)" in text
    assert "Ask the user" in text and "confirm_cost=16.7" in text
    assert low.is_error and "confirm_cost=10 is below this call's current estimate" in \
        text_of(low) and "confirm_cost=16.7" in text_of(low)
    for bad in (junk, job):
        assert bad.is_error and "confirm_cost must be a number of quota" in text_of(bad)
    assert not agreed.is_error, agreed.content
    assert len(emulator.api_requests("E1")) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_elicitation_over_streamable_http(
    emulator: Emulator, tmp_path: Path, mode: str
) -> None:
    """Modern clients answer in a second HTTP request (InputRequiredResult); legacy ones
    mid-call over the session's stream."""
    from mcp import Client

    settings = make_server_settings(emulator.base_url, tmp_path, confirm_above=10)
    asked: list[str] = []
    with serve_http(settings) as origin:
        async with Client(origin + "/mcp", mode=mode,
                          elicitation_callback=answering("accept", asked)) as client:
            accepted = await client.call_tool("generate_image", HIGH)
        async with Client(origin + "/mcp", mode=mode,
                          elicitation_callback=answering("decline", asked)) as client:
            declined = await client.call_tool("generate_image", {**HIGH, "prompt": "no"})
    assert asked == [QUESTION, QUESTION]
    assert not accepted.is_error, accepted.content
    assert declined.is_error and "declined" in text_of(declined)
    assert len(emulator.api_requests("E1")) == 1
