"""``app_partials``: the partial images of a pending job, for the viewer to poll.

A streamed call (``partial_images`` > 0) saves each partial image as it arrives
(:mod:`ttapi_mcp.store.partials`); the model reads them as ``ttapi://partials/{id}``.
While the job is pending the viewer shows the newest partial of each image, through
this app-only tool, and turns into the result when the job completes. It reads only
what the model can read, and sends a preview only for a partial the page lacks (``have``).
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ContentBlock, ImageContent, TextContent
from pydantic import Field

from ttapi_mcp.server.partials import PARTIAL_PREFIX
from ttapi_mcp.server.startup import services_of

PARTIAL_EDGE = 512
PARTIAL_MAX_B64 = 120_000
HAVE_MAX = 64


async def app_partials(
    ctx: Context,
    job_id: Annotated[str, Field(min_length=1, max_length=200,
                                 description="The pending job's job_id.")],
    have: Annotated[list[str] | None, Field(max_length=HAVE_MAX, description=(
        "partial_ids the page already shows: they are listed, not sent again."))] = None,
) -> CallToolResult:
    """The newest partial image of each image of a job, as previews."""
    from ttapi_mcp.previews import make_preview

    services = await services_of(ctx.request_context.lifespan_context)
    newest: dict[int, Any] = {}
    for partial in await services.store.partials_for_job(job_id.strip()):
        newest[partial.image_index] = partial  # ordered by (image, partial): last wins
    known = set(have or ())
    blocks: list[ContentBlock] = []
    listed: list[dict[str, Any]] = []
    for image_index in sorted(newest):
        partial = newest[image_index]
        sent = partial.partial_id not in known
        if sent:
            try:
                local = await services.store.local_partial(partial)
                preview = await make_preview(local, PARTIAL_EDGE, PARTIAL_MAX_B64)
            except (OSError, ValueError) as exc:
                raise ToolError(f"partial image {partial.partial_id} cannot be read: "
                                f"{exc}") from None
            blocks.append(ImageContent(type="image", data=preview.data_b64,
                                       mime_type=preview.mime))
        listed.append({"partial_id": partial.partial_id, "image_index": image_index,
                       "partial_index": partial.partial_index, "sent": sent,
                       "uri": f"{PARTIAL_PREFIX}{partial.partial_id}"})
    text = (f"{len(listed)} partial image{'s' if len(listed) != 1 else ''} of job {job_id}"
            if listed else f"no partial images of job {job_id} yet")
    return CallToolResult(content=[TextContent(type="text", text=text), *blocks],
                          structured_content={"job_id": job_id, "partials": listed})
