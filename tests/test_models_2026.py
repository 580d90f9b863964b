"""The 2026 model line-up through the real tools (§11.3, §11.5): gpt-image-1.5 and
gpt-image-2 with their rules, moderation on edits, and gpt-image-1-mini gone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import mcp_client
from PIL import Image

from ttapi_mcp.emulator import Emulator

pytestmark = pytest.mark.anyio


def _png(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 64), (30, 90, 160)).save(path)
    return str(path)


async def test_edit_sends_moderation_for_gpt_models(
    server_settings: Any, emulator: Emulator, client_mode: str
) -> None:
    image = _png(server_settings.output_dir / "in.png")
    async with mcp_client(server_settings, client_mode) as client:
        result = await client.call_tool("edit_image", {
            "prompt": "add a hat", "images": [image], "model": "gpt-image-1.5",
            "moderation": "low", "quality": "low", "size": "1024x1024", "preview": "none"})
    assert not result.is_error, result.content
    (sent,) = emulator.api_requests("E2")
    assert sent.form["moderation"] == "low" and sent.form["model"] == "gpt-image-1.5"


async def test_gpt_image_2_takes_a_large_custom_size(
    server_settings: Any, emulator: Emulator
) -> None:
    async with mcp_client(server_settings) as client:
        result = await client.call_tool("generate_image", {
            "prompt": "a wide valley", "model": "gpt-image-2", "size": "2048x1152",
            "quality": "low", "preview": "none"})
    assert not result.is_error, result.content
    image = result.structured_content["images"][0]
    assert (image["width"], image["height"]) == (2048, 1152)


@pytest.mark.parametrize(("args", "words"), [
    ({"model": "gpt-image-2", "size": "512x512"},
     ("512x512", "655,360", "nearest valid size is '816x816'")),
    ({"model": "gpt-image-2", "background": "transparent"},
     ("background", "'transparent'", "opaque, auto")),
    ({"model": "gpt-image-1-mini"}, ("gpt-image-1-mini", "gpt-image-1.5", "gpt-image-2")),
])
async def test_2026_model_rules_are_refused_before_any_request(
    server_settings: Any, emulator: Emulator, args: dict[str, Any], words: tuple[str, ...]
) -> None:
    async with mcp_client(server_settings) as client:
        result = await client.call_tool("generate_image", {"prompt": "p", **args})
    assert result.is_error
    for word in words:
        assert word in result.content[0].text
    assert emulator.api_requests() == []


@pytest.mark.parametrize(("args", "words"), [
    ({"model": "gpt-image-1", "moderation": "high"}, ("moderation", "'high'", "'low'", "'auto'")),
    ({"model": "dall-e-2", "moderation": "low"}, ("moderation", "dall-e-2")),
    ({"model": "gpt-image-2", "input_fidelity": "high"}, ("input_fidelity", "gpt-image-2")),
])
async def test_new_edit_rules_are_refused_before_any_request(
    server_settings: Any, emulator: Emulator, args: dict[str, Any], words: tuple[str, ...]
) -> None:
    image = _png(server_settings.output_dir / "in.png")
    async with mcp_client(server_settings) as client:
        result = await client.call_tool("edit_image", {"prompt": "p", "images": [image],
                                                       **args})
    assert result.is_error
    for word in words:
        assert word in result.content[0].text, result.content[0].text
    assert emulator.api_requests() == []
