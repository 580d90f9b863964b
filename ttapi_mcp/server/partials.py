"""``ttapi://partials/{partial_id}``: a partial image of a streamed call (§11.4).

A template, not a listed resource: partials are previews of a job, never results.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError

from .startup import services_of

if TYPE_CHECKING:
    from ttapi_mcp.service import Services

PARTIAL_PREFIX = "ttapi://partials/"


async def read_partial(services: Services, partial_id: str) -> ReadResourceContents:
    """The partial's bytes with its own mime type (PNG, JPEG or WebP)."""
    found = await services.store.get_partial(partial_id)
    if found is not None:
        try:
            path = await services.store.local_partial(found)
            return ReadResourceContents(content=await anyio.Path(path).read_bytes(),
                                        mime_type=found.mime)
        except (OSError, ValueError):  # StoreError: the shared object is gone
            pass
    raise ResourceNotFoundError(f"no partial image {partial_id!r}: it is gone or the id "
                                "is wrong")


def register_partials(server: MCPServer) -> None:
    @server.resource(
        "ttapi://partials/{partial_id}", name="partial", title="Partial image (preview)",
        description="A partial image a streamed generate_image/edit_image call sent before "
        "its final image; a preview only, not a result.", mime_type="image/png",
    )
    async def partial(partial_id: str, ctx: Context) -> bytes:
        # Answered by TTAPIServer.read_resource (for the mime type); kept for direct use.
        services = await services_of(ctx.request_context.lifespan_context)
        contents = await read_partial(services, partial_id)
        assert isinstance(contents.content, bytes)
        return contents.content
