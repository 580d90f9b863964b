"""Thumbnails are made from the decoded bytes while the image is saved, and reused.

Why: the preview is part of the call's wait; made afterwards from the saved file it
re-read and re-decoded the whole image. These tests check which source the preview
came from, never how long it took.
"""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from conftest import make_server_settings, mcp_client

from ttapi_mcp import previews
from ttapi_mcp.emulator import Emulator

pytestmark = pytest.mark.anyio

GPT = {"model": "gpt-image-1", "size": "1024x1024", "quality": "low"}


def _record_sources(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    sources: list[str] = []
    real = previews.start_preview

    def spy(source: Path | bytes, max_edge: int, *args: Any) -> Future[previews.Preview]:
        sources.append("bytes" if isinstance(source, bytes) else "file")
        return real(source, max_edge, *args)

    monkeypatch.setattr(previews, "start_preview", spy)
    monkeypatch.setattr("ttapi_mcp.service.common.start_preview", spy)
    return sources


async def test_thumbnails_come_from_the_bytes_being_saved(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = _record_sources(monkeypatch)
    async with mcp_client(make_server_settings(emulator.base_url, tmp_path)) as client:
        result = await client.call_tool("generate_image", {
            "prompt": "three early previews", "n": 3, "preview": "thumbnail", **GPT})
    assert not result.is_error, result.content
    images = [c for c in result.content if c.type == "image"]
    assert len(images) == 3
    assert all(c.mime_type in ("image/webp", "image/jpeg") for c in images)
    assert sources == ["bytes"] * 3  # none re-made from the saved files


async def test_no_thumbnail_work_without_a_thumbnail(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = _record_sources(monkeypatch)
    async with mcp_client(make_server_settings(emulator.base_url, tmp_path)) as client:
        result = await client.call_tool("generate_image", {
            "prompt": "no preview", "n": 2, "preview": "none", **GPT})
    assert not result.is_error, result.content
    assert not [c for c in result.content if c.type == "image"]
    assert sources == []

