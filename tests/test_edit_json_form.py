"""The JSON edit form (§11.5): GPT edits of http(s) URLs as image_url entries, when the
setting asks for it; multipart stays the default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest
from conftest import CANARY_KEY, make_server_settings, mcp_client

from ttapi_mcp.emulator import Emulator

pytestmark = pytest.mark.anyio


def _emulator_url(emulator: Emulator) -> str:
    with httpx2.Client(base_url=str(emulator.base_url), headers={"TT-API-KEY": "k"}) as http:
        answer = http.post("/v1/images/generations", json={
            "model": "dall-e-2", "prompt": "a boat", "size": "256x256", "response_format": "url"})
    emulator.clear_log()
    return str(answer.json()["data"][0]["url"])


async def test_url_inputs_go_as_json_when_configured(
    emulator: Emulator, tmp_path: Path, client_mode: str
) -> None:
    url = _emulator_url(emulator)
    settings = make_server_settings(emulator.base_url, tmp_path, edit_json_for_urls=True)
    async with mcp_client(settings, client_mode) as client:
        result = await client.call_tool("edit_image", {
            "prompt": "add a sail", "images": [url, url], "model": "gpt-image-1",
            "moderation": "low", "quality": "low", "size": "1024x1024", "preview": "none"})
    assert not result.is_error, result.content
    assert result.structured_content["status"] == "completed"
    (sent,) = emulator.api_requests("E2")
    assert sent.files == [] and sent.form == {}
    assert sent.json["images"] == [{"image_url": url}, {"image_url": url}]
    assert sent.json["moderation"] == "low"
    assert emulator.api_requests("download") == []  # the server fetched nothing itself
    assert CANARY_KEY not in str(sent.json)


async def test_multipart_stays_the_default_for_url_inputs(
    server_settings: Any, emulator: Emulator
) -> None:
    url = _emulator_url(emulator)
    async with mcp_client(server_settings) as client:
        result = await client.call_tool("edit_image", {
            "prompt": "add a sail", "images": [url], "model": "gpt-image-1",
            "quality": "low", "size": "1024x1024", "preview": "none"})
    assert not result.is_error, result.content
    (sent,) = emulator.api_requests("E2")
    assert sent.json is None and len(sent.files) == 1
    assert len(emulator.api_requests("download")) == 1  # downloaded, checked, uploaded


async def test_bad_parameters_of_a_url_edit_never_reach_ttapi(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path, edit_json_for_urls=True)
    async with mcp_client(settings) as client:
        result = await client.call_tool("edit_image", {
            "prompt": "p", "images": ["https://example.com/a.png"], "model": "gpt-image-2",
            "input_fidelity": "high", "background": "transparent"})
    assert result.is_error
    text = result.content[0].text
    assert "input_fidelity" in text and "background" in text
    assert emulator.api_requests() == []
