"""One contact sheet instead of n thumbnails, when a call returns several images.

Ten 512 px thumbnails cost about 190 KB of base64 and ten image blocks of tokens; one
grid with a long edge of at most 1024 px, each cell labelled with the image's index
(the ``[i]`` of the text summary, so "image 3" means the same thing to the agent and to
the person), costs a fraction of that and shows the set at a glance. Cells are made
from the small thumbnails already decoded while saving when there are some, so the
originals are not decoded twice. Pillow work runs on the preview threads.
"""

from __future__ import annotations

import base64
import io
import math
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttapi_mcp.previews import Preview, run_on_preview_threads, wait_preview

SHEET_MAX_EDGE = 1024
"""Long edge of the whole sheet, pixels."""
SHEET_MAX_B64_BYTES = 150_000
"""Upper bound for the sheet's base64 text."""

_GAP = 6
_MAX_CELL = 384
"""Cells no larger than this: four images need no more pixels (tokens) than 780 x 780."""
_QUALITIES = (72, 62, 52, 42)
_BACKGROUND = (236, 236, 236)
_LABEL_BG = (20, 20, 20)
_LABEL_FG = (255, 255, 255)


@dataclass(frozen=True)
class SheetCell:
    """One image on the sheet: its index label and where its pixels come from."""

    index: int
    source: Path | bytes


def grid_shape(count: int) -> tuple[int, int]:
    """(columns, rows) of a near-square grid for ``count`` cells, wider than tall."""
    columns = math.ceil(math.sqrt(count))
    return columns, math.ceil(count / columns)


def _open_rgb(source: Path | bytes, edge: int) -> Any:
    from PIL import Image

    opened = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    with opened:
        if opened.format == "JPEG":
            opened.draft("RGB", (edge, edge))
        opened.load()
        if opened.mode in ("RGBA", "LA", "PA") or "transparency" in opened.info:
            rgba = opened.convert("RGBA")
            flat = Image.new("RGB", rgba.size, _BACKGROUND)
            flat.paste(rgba, mask=rgba.getchannel("A"))
            return flat
        return opened.convert("RGB")


def _label(sheet: Any, index: int, x: int, y: int, cell: int) -> None:
    from PIL import ImageDraw, ImageFont

    size = max(12, cell // 9)
    font = ImageFont.load_default(size=size)
    text = str(index)
    draw = ImageDraw.Draw(sheet)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    pad = max(3, size // 4)
    box = (x, y, x + right - left + 2 * pad, y + bottom - top + 2 * pad)
    draw.rectangle(box, fill=_LABEL_BG)
    draw.text((x + pad - left, y + pad - top), text, fill=_LABEL_FG, font=font)


def _compose(cells: list[SheetCell], max_edge: int) -> Any:
    from PIL import Image

    columns, rows = grid_shape(len(cells))
    cell = min(_MAX_CELL, (max_edge - _GAP * (columns + 1)) // columns)
    width = columns * cell + _GAP * (columns + 1)
    height = rows * cell + _GAP * (rows + 1)
    sheet = Image.new("RGB", (width, height), _BACKGROUND)
    for position, item in enumerate(cells):
        column, row = position % columns, position // columns
        x0, y0 = _GAP + column * (cell + _GAP), _GAP + row * (cell + _GAP)
        try:
            image = _open_rgb(item.source, cell)
        except OSError:
            image = None
        if image is not None:
            image.thumbnail((cell, cell), Image.Resampling.LANCZOS, reducing_gap=2.0)
            sheet.paste(image, (x0 + (cell - image.width) // 2, y0 + (cell - image.height) // 2))
        _label(sheet, item.index, x0, y0, cell)
    return sheet


def contact_sheet_sync(
    cells: list[SheetCell], max_edge: int = SHEET_MAX_EDGE,
    max_b64_bytes: int = SHEET_MAX_B64_BYTES,
) -> Preview:
    """A labelled JPEG grid of ``cells`` whose base64 fits ``max_b64_bytes``.

    Raises ``ValueError`` when there is nothing to show or it cannot be made to fit.
    """
    if not cells:
        raise ValueError("a contact sheet needs at least one image")
    edge = max_edge
    while edge >= 128:
        sheet = _compose(cells, edge)
        for quality in _QUALITIES:
            buf = io.BytesIO()
            sheet.save(buf, format="JPEG", quality=quality)
            raw = buf.getvalue()
            if 4 * ((len(raw) + 2) // 3) <= max_b64_bytes:
                return Preview(base64.b64encode(raw).decode("ascii"), "image/jpeg", *sheet.size)
        edge = int(edge * 0.8)
    raise ValueError("the contact sheet cannot be reduced below its size bound")


def start_contact_sheet(cells: list[SheetCell]) -> Future[Preview]:
    """Begin a contact sheet on one of the preview threads."""
    return run_on_preview_threads(contact_sheet_sync, cells)


async def make_contact_sheet(cells: list[SheetCell]) -> Preview:
    """The contact sheet, made off the event loop."""
    return await wait_preview(start_contact_sheet(cells))
