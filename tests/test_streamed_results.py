"""Streamed results through the tools (§11.4): partial images saved at once as previews of
their job and announced, final images saved as always, broken streams kept honest."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import CANARY_KEY, make_server_settings, mcp_client
from PIL import Image

from ttapi_mcp.emulator import Emulator, Fault

pytestmark = pytest.mark.anyio
ARGS = {"prompt": "a streamed heron", "model": "gpt-image-1", "quality": "low",
        "size": "1024x1024", "preview": "none"}


async def test_partials_are_saved_announced_and_never_listed_as_results(
    server_settings: Any, emulator: Emulator, client_mode: str
) -> None:
    emulator.options.stream_seconds = 0.6
    notes: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        notes.append(message or "")

    async with mcp_client(server_settings, client_mode) as client:
        result = await client.call_tool("generate_image", {**ARGS, "partial_images": 2},
                                        progress_callback=on_progress)
        webp = await client.call_tool("generate_image", {**ARGS, "partial_images": 1,
                                                         "output_format": "webp"})
        assert not webp.is_error, webp.content
        webp_partial = f"ttapi://partials/{webp.structured_content['job_id']}.0.0"
        assert (await client.read_resource(webp_partial)).contents[0].mime_type == "image/webp"
        assert not result.is_error, result.content
        listed = [str(r.uri) for r in (await client.list_resources()).resources]
        uris = sorted({u for n in notes for u in re.findall(r"ttapi://partials/[\w.-]+", n)})
        assert uris, notes
        read = await client.read_resource(uris[0])
    data = result.structured_content
    assert data["status"] == "completed" and len(data["images"]) == 1
    assert not any("partials" in u for u in listed)
    assert read.contents[0].blob and read.contents[0].mime_type == "image/png"
    sent = emulator.api_requests("E1")[0]
    assert sent.json["stream"] is True and sent.json["partial_images"] == 2
    with sqlite3.connect(server_settings.store_path) as db:
        rows = db.execute(
            "SELECT job_id, path FROM partial_images ORDER BY partial_index").fetchall()
    assert len(rows) == 3 and all(job.startswith("local-") for job, _ in rows)
    rows = [r for r in rows if r[1].endswith(".png")]
    for _, path in rows:
        assert "_partial" in Path(path).name and Path(path).is_file()
        assert Path(server_settings.output_dir) not in Path(path).parents
        with Image.open(path) as im:
            assert im.size == (1024, 1024)
    assert any(str(Path(rows[0][1])) in n for n in notes)
    assert all(CANARY_KEY not in n for n in notes)


async def test_default_partial_images_come_from_the_setting(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path, partial_images=1)
    async with mcp_client(settings) as client:
        gpt = await client.call_tool("generate_image", ARGS)
        dalle = await client.call_tool("generate_image", {
            "prompt": "p", "model": "dall-e-2", "size": "256x256", "preview": "none"})
    assert not gpt.is_error and not dalle.is_error, (gpt.content, dalle.content)
    first, second = emulator.api_requests("E1")
    assert first.json["partial_images"] == 1 and first.json["stream"] is True
    assert "stream" not in second.json and "partial_images" not in second.json


async def test_a_stream_that_breaks_keeps_completed_images_and_says_may_be_billed(
    server_settings: Any, emulator: Emulator
) -> None:
    emulator.options.stream_seconds = 0.05
    emulator.add_fault(Fault(route="E1", kind="stream_no_completed"))
    async with mcp_client(server_settings) as client:
        none = await client.call_tool("generate_image", {**ARGS, "n": 2, "partial_images": 1})
        emulator.add_fault(Fault(route="E1", kind="stream_cut"))
        cut = await client.call_tool("generate_image", {**ARGS, "partial_images": 1})
    for result in (none, cut):
        assert result.is_error
        text = result.content[0].text
        assert "may have been billed" in text and "billed again" in text
        assert CANARY_KEY not in text
    assert len(emulator.api_requests("E1")) == 2  # never resent


async def test_a_malformed_event_loses_nothing_that_completed(
    server_settings: Any, emulator: Emulator
) -> None:
    emulator.options.stream_seconds = 0.05
    emulator.add_fault(Fault(route="E1", kind="stream_malformed"))
    async with mcp_client(server_settings) as client:
        result = await client.call_tool("generate_image", {**ARGS, "n": 2, "partial_images": 1})
    assert not result.is_error, result.content
    assert len(result.structured_content["images"]) == 2


@pytest.mark.parametrize(("args", "word"), [
    ({"partial_images": 4}, "partial_images"),
    ({"model": "dall-e-2", "size": "256x256", "partial_images": 1}, "partial_images"),
    ({"model": "dall-e-3", "partial_images": 2}, "partial_images"),
])
async def test_bad_partial_images_never_reach_ttapi(
    server_settings: Any, emulator: Emulator, args: dict[str, Any], word: str
) -> None:
    async with mcp_client(server_settings) as client:
        result = await client.call_tool("generate_image", {**ARGS, **args})
    assert result.is_error and word in result.content[0].text
    assert emulator.api_requests() == []


async def test_streamed_edit_saves_its_partials(
    server_settings: Any, emulator: Emulator
) -> None:
    emulator.options.stream_seconds = 0.05
    image = server_settings.output_dir / "in.png"
    image.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 64), (9, 9, 9)).save(image)
    async with mcp_client(server_settings) as client:
        result = await client.call_tool("edit_image", {
            "prompt": "add a hat", "images": [str(image)], "model": "gpt-image-1",
            "quality": "low", "size": "1024x1024", "partial_images": 1, "preview": "none"})
    assert not result.is_error, result.content
    assert emulator.api_requests("E2")[0].form["stream"] == "true"
    with sqlite3.connect(server_settings.store_path) as db:
        assert db.execute("SELECT COUNT(*) FROM partial_images").fetchone()[0] == 1
