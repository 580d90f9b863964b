"""Several images come back as one labelled contact sheet by default.

Why: n separate thumbnails cost n image blocks (about 190 KB of base64 for ten); one
grid with each cell marked by its index lets the agent and the person say "image 3"
and stays within 1024 px and 150 KB. ``thumbnail`` keeps one per image.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest
from conftest import make_server_settings, mcp_client
from PIL import Image

from ttapi_mcp.contactsheet import (
    SHEET_MAX_B64_BYTES,
    SHEET_MAX_EDGE,
    SheetCell,
    contact_sheet_sync,
    grid_shape,
)
from ttapi_mcp.emulator import Emulator

GPT = {"model": "gpt-image-1", "size": "1024x1024", "quality": "low"}


def _images(result: Any) -> list[Any]:
    return [c for c in result.content if c.type == "image"]


def _decode(block: Any) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(block.data)))
    image.load()
    return image


def _solid_png(color: tuple[int, int, int], size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def test_grid_is_near_square() -> None:
    assert grid_shape(1) == (1, 1)
    assert grid_shape(2) == (2, 1)
    assert grid_shape(4) == (2, 2)
    assert grid_shape(5) == (3, 2)
    assert grid_shape(10) == (4, 3)


def test_each_cell_carries_its_index_label() -> None:
    """A dark label box with light text sits in each cell's corner; the rest is the image."""
    red = _solid_png((220, 30, 30), (600, 400))
    sheet = contact_sheet_sync([SheetCell(i, red) for i in (0, 1, 2, 3)], 512)
    image = _decode(type("B", (), {"data": sheet.data_b64})())
    assert max(image.size) <= 512
    columns, _ = grid_shape(4)
    cell = (512 - 6 * (columns + 1)) // columns
    for position in range(4):
        x0 = 6 + (position % columns) * (cell + 6)
        y0 = 6 + (position // columns) * (cell + 6)
        label = image.crop((x0, y0, x0 + cell // 6, y0 + cell // 6)).convert("L")
        darkest, lightest = label.getextrema()
        assert darkest < 60 and lightest > 180, (position, label.getextrema())
        r, g, b = image.getpixel((x0 + cell // 2, y0 + cell // 2))[:3]
        assert r > 150 and g < 90 and b < 90  # the image itself, centred in the cell


def test_transparent_images_are_flattened_into_a_jpeg() -> None:
    buf = io.BytesIO()
    Image.new("RGBA", (300, 300), (0, 0, 255, 0)).save(buf, format="PNG")
    sheet = contact_sheet_sync([SheetCell(0, buf.getvalue()), SheetCell(1, buf.getvalue())])
    assert sheet.mime == "image/jpeg"


def test_a_noisy_sheet_still_fits_its_budget() -> None:
    import os

    noise = Image.frombytes("RGB", (1024, 1024), os.urandom(1024 * 1024 * 3))
    buf = io.BytesIO()
    noise.save(buf, format="PNG")
    sheet = contact_sheet_sync([SheetCell(i, buf.getvalue()) for i in range(10)])
    assert len(sheet.data_b64) <= SHEET_MAX_B64_BYTES
    assert max(sheet.width, sheet.height) <= SHEET_MAX_EDGE


def test_no_cells_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        contact_sheet_sync([])


@pytest.mark.anyio
@pytest.mark.parametrize("n", [4, 10])
async def test_several_images_give_one_sheet_by_default(
    emulator: Emulator, tmp_path: Path, n: int
) -> None:
    async with mcp_client(make_server_settings(emulator.base_url, tmp_path)) as client:
        result = await client.call_tool("generate_image", {
            "prompt": "a sheet of lighthouses", "n": n, **GPT})
    assert not result.is_error, result.content
    blocks = _images(result)
    assert len(blocks) == 1
    assert len(blocks[0].data) <= SHEET_MAX_B64_BYTES
    sheet = _decode(blocks[0])
    assert max(sheet.size) <= SHEET_MAX_EDGE
    columns, rows = grid_shape(n)
    assert sheet.width > sheet.height if rows < columns else sheet.width >= sheet.height
    # Everything else is as before: a link per image and the full structured result.
    links = [c for c in result.content if c.type == "resource_link"]
    assert len(links) == n
    assert [i["index"] for i in result.structured_content["images"]] == list(range(n))


@pytest.mark.anyio
async def test_thumbnail_keeps_one_per_image_and_one_image_is_a_thumbnail(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path)
    async with mcp_client(settings) as client:
        several = await client.call_tool("generate_image", {
            "prompt": "three thumbnails", "n": 3, "preview": "thumbnail", **GPT})
        single = await client.call_tool("generate_image", {"prompt": "one image", **GPT})
    assert len(_images(several)) == 3
    [only] = _images(single)
    assert max(_decode(only).size) <= settings.thumbnail_size


@pytest.mark.anyio
async def test_the_structured_result_does_not_depend_on_the_preview(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path)
    async with mcp_client(settings) as client:
        sheet = await client.call_tool("generate_image", {
            "prompt": "same either way", "n": 2, "dedupe": False, **GPT})
        none = await client.call_tool("generate_image", {
            "prompt": "same either way", "n": 2, "preview": "none", "dedupe": False, **GPT})

    def shape(result: Any) -> dict[str, Any]:
        doc = dict(result.structured_content, job_id=None)
        doc["images"] = [{k: v for k, v in i.items() if k not in ("id", "path", "uri")}
                         for i in doc["images"]]
        return doc

    assert shape(sheet) == shape(none)
    assert len(_images(none)) == 0
