"""Figures 7 and 8: what seeing images costs.

7. Result size and estimated image tokens (width x height / 750 per image block) of a
   generate_image result for n = 1, 4 and 10: the default contact sheet against one
   thumbnail per image (the previous default). Target: n = 10 at most a quarter.
8. The gallery's first page (app_gallery, thumbnails cached) with 10,000 images against
   10 images, same page size, in one run. Target: at most 2x.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from fig_store import populate
from harness import EmulatorProcess, Plan, Row, median, server_env, stdio_session, timed


def _image_cost(result: Any) -> tuple[int, int]:
    """(base64 bytes of the image blocks, estimated image tokens)."""
    from PIL import Image

    size = tokens = 0
    for block in result.content:
        if block.type != "image":
            continue
        size += len(block.data)
        with Image.open(io.BytesIO(base64.b64decode(block.data))) as image:
            tokens += image.width * image.height // 750
    return size, tokens


async def result_size(emulator: EmulatorProcess, work: Path, plan: Plan) -> list[Row]:
    rows = []
    async with stdio_session(server_env(emulator, work / "sheet")) as (client, _):
        for n in (1, 4, 10):
            args = {"prompt": f"a harbour at dawn, {n} views", "model": "gpt-image-1", "n": n,
                    "size": "1024x1024", "quality": "low", "dedupe": False}
            sheet = _image_cost(await client.call_tool("generate_image", args))
            thumbs = _image_cost(await client.call_tool(
                "generate_image", {**args, "preview": "thumbnail"}))
            ratio = sheet[0] / thumbs[0]
            target = "<= 0.25x" if n == 10 else "-"
            rows.append(Row(
                f"7. preview of n={n} (sheet vs one thumbnail each)",
                f"{sheet[0] / 1000:.0f} KB, ~{sheet[1]} image tokens",
                f"{thumbs[0] / 1000:.0f} KB, ~{thumbs[1]} image tokens", ratio, target,
                ratio <= 0.25 if n == 10 else None))
    return rows


async def gallery_page(emulator: EmulatorProcess, work: Path, plan: Plan) -> list[Row]:
    small, big = work / "gallery-small", work / "gallery-big"
    page = 10
    await populate(small, page)
    await populate(big, plan.store_images)
    from mcp.client.extension import advertise
    from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID

    def apps() -> list[Any]:  # a host that renders Apps, as the gallery's are
        return [advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})]

    async with stdio_session(server_env(emulator, small), extensions=apps()) as (few, _), \
            stdio_session(server_env(emulator, big), extensions=apps()) as (many, _):
        async def first_page(client: Any) -> None:
            result = await client.call_tool("app_gallery", {"limit": page})
            if result.is_error or len(result.structured_content["items"]) != page:
                raise RuntimeError(f"app_gallery failed: {result.content}")

        for client in (few, many):  # makes the thumbnails: later pages read the cache
            await first_page(client)
        few_s, many_s = [], []
        for _ in range(max(10, plan.reps * 3)):
            few_s.append(await timed(lambda: first_page(few)))
            many_s.append(await timed(lambda: first_page(many)))
    ratio = median(many_s) / median(few_s)
    return [Row(f"8. gallery first page ({page} tiles), {plan.store_images:,} images (stdio)",
                f"{median(many_s) * 1000:.1f} ms", f"{median(few_s) * 1000:.1f} ms with "
                f"{page} images", ratio, "<= 2x", ratio <= 2.0)]
