"""How a tool result is shown over MCP: structured content plus content blocks.

The structured model (service/results.py) becomes the tool's ``outputSchema`` and
``structuredContent``; the content blocks serve clients that only read ``content``: a one-paragraph
summary, a ``resource_link`` per saved image and, per the ``preview`` setting, one
contact sheet of several images or a small thumbnail each (never the full image unless
asked, because clients cap result size).
"""

from __future__ import annotations

import logging
from pathlib import Path

import anyio
from mcp_types import CallToolResult, ContentBlock, ImageContent, ResourceLink, TextContent

from ttapi_mcp.previews import Preview, make_preview, read_full, wait_preview
from ttapi_mcp.service.results import ImageToolResult, PreviewMode, SavedImage

log = logging.getLogger(__name__)


def summary_text(result: ImageToolResult) -> str:
    """A short human-readable summary of the result."""
    parts: list[str] = []
    if result.status == "pending":
        parts.append(f"Job {result.job_id} is still running (status {result.job_status}).")
        if result.next_call is not None:
            args = ", ".join(f"{k}={v!r}" for k, v in result.next_call.arguments.items())
            parts.append(f"Call {result.next_call.tool}({args}) to get the image.")
        return "\n".join([" ".join(parts), *_money_lines(result)])
    if result.status == "failed":
        # The advice matters: an agent that only reads "failed" tends to poll it again.
        reason = (result.message or "no reason given").rstrip(". ")
        return (
            f"Job {result.job_id} failed: {reason}. It is "
            "finished and will not produce an image; change what the reason points at "
            "(prompt, reference images) and submit a new call."
        )
    count = len(result.images)
    parts.append(f"Saved {count} image{'s' if count != 1 else ''} from {result.model}.")
    for image in result.images:
        size = f"{image.width}x{image.height}" if image.width and image.height else "unknown size"
        parts.append(f"[{image.index}] {image.path} ({size}, {image.mime}, {image.uri})")
    for miss in result.missing:
        parts.append(f"Image {miss.index} is missing: {miss.error}")
    if result.job_id:
        parts.append(f"Job id: {result.job_id}.")
    parts.extend(_money_lines(result))
    return "\n".join(parts)


def _money_lines(result: ImageToolResult) -> list[str]:
    """The cost estimate and any warning (e.g. a low balance), one line each."""
    lines = []
    if result.cost is not None:
        usd = f"${result.cost.estimate_usd:.2f}"
        lines.append(f"Estimated cost: about {result.cost.estimate_quota:g} quota ({usd}); "
                     "an estimate, TTAPI publishes no price table.")
    if result.warning:
        lines.append(f"Warning: {result.warning}")
    return lines


async def _early_preview(
    result: ImageToolResult, image: SavedImage, thumbnail_size: int
) -> Preview | None:
    """The thumbnail started from the decoded bytes while saving, if there is a good one."""
    future = result.preview_for(image.id, thumbnail_size)
    if future is None:
        return None
    try:
        return await wait_preview(future)
    except (OSError, ValueError) as exc:
        log.debug("no early preview for image %s: %s", image.id, exc)
        return None


async def _preview_block(
    result: ImageToolResult, image: SavedImage, mode: PreviewMode, thumbnail_size: int
) -> ContentBlock | None:
    path = Path(image.path)
    try:
        if mode == "full":
            return ImageContent(type="image", data=await read_full(path), mime_type=image.mime)
        preview = await _early_preview(result, image, thumbnail_size)
        if preview is None:
            preview = await make_preview(path, thumbnail_size)
    except (OSError, ValueError) as exc:
        log.warning("no preview for image %s: %s", image.id, exc)
        return None
    return ImageContent(type="image", data=preview.data_b64, mime_type=preview.mime)


async def _sheet_block(result: ImageToolResult, thumbnail_size: int) -> ContentBlock | None:
    """One labelled grid of every image, built from the early thumbnails where there are."""
    import base64

    from ttapi_mcp.contactsheet import SheetCell, make_contact_sheet

    cells: list[SheetCell] = []
    for image in result.images:
        early = await _early_preview(result, image, thumbnail_size)
        source: Path | bytes = (
            base64.b64decode(early.data_b64) if early is not None else Path(image.path))
        cells.append(SheetCell(image.index, source))
    try:
        sheet = await make_contact_sheet(cells)
    except (OSError, ValueError) as exc:
        log.warning("no contact sheet: %s", exc)
        return None
    return ImageContent(type="image", data=sheet.data_b64, mime_type=sheet.mime)


async def to_call_result(
    result: ImageToolResult, preview: PreviewMode, thumbnail_size: int
) -> CallToolResult:
    """Build the MCP result: summary, resource links, previews, structured content."""
    content: list[ContentBlock] = [TextContent(type="text", text=summary_text(result))]
    for image in result.images:
        content.append(
            ResourceLink(
                type="resource_link",
                name=Path(image.path).name,
                uri=image.uri,
                mime_type=image.mime,
                size=image.bytes,
                description=f"Image {image.index} ({image.width}x{image.height})",
            )
        )
    if preview == "sheet" and len(result.images) > 1:
        sheet = await _sheet_block(result, thumbnail_size)
        if sheet is not None:
            content.append(sheet)
    elif preview != "none":
        # Concurrently (several preview threads), kept in image order.
        blocks: list[ContentBlock | None] = [None] * len(result.images)

        async def fill(i: int, image: SavedImage) -> None:
            mode: PreviewMode = "thumbnail" if preview == "sheet" else preview
            blocks[i] = await _preview_block(result, image, mode, thumbnail_size)

        async with anyio.create_task_group() as tg:
            for i, image in enumerate(result.images):
                tg.start_soon(fill, i, image)
        content.extend(b for b in blocks if b is not None)
    return CallToolResult(
        content=content, structured_content=result.model_dump(mode="json")
    )
