"""The app's own tools, and the extension that serves the page.

``app_images``, ``app_gallery`` and ``app_partials`` (:mod:`.pending`) are visible to the
app only (hidden from the model): they read what the model can already read (the store's
images and partial images, as resources), shaped for a page: large previews, thumbnails
from the cache, filtered keyset pages, a pending job's partials. ``show_gallery``
is the model's way to open the gallery. Nothing here spends money or writes outside the
thumbnail cache.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio
from mcp.server.apps import Apps, ResourceCsp
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resources import FunctionResource
from mcp_types import CallToolResult, ContentBlock, ImageContent, TextContent, ToolAnnotations
from pydantic import Field

from ttapi_mcp.server.startup import services_of

from . import VIEWER_URI
from .page import app_html
from .pending import app_partials

if TYPE_CHECKING:
    from ttapi_mcp.config import Settings
    from ttapi_mcp.store import ImageStore
    from ttapi_mcp.store.gallery import GalleryFilter
    from ttapi_mcp.thumbcache import ThumbCache

READ_ONLY = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
PAGE_DEFAULT = 60
APP_ONLY_TOOLS = frozenset({"app_images", "app_gallery", "app_partials", "show_gallery"})
"""Listed only to clients that negotiated Apps: without a page they are no use."""


def thumb_cache(settings: Settings) -> ThumbCache:
    """The thumbnail cache of a store: beside its database, never in the output folder."""
    from ttapi_mcp.thumbcache import ThumbCache

    return ThumbCache(settings.store_path.parent / "thumbs")


async def _image_block(cache: ThumbCache, image: Any, size: str) -> ImageContent:
    from ttapi_mcp.thumbcache import GALLERY_EDGE, GALLERY_MAX_B64, VIEWER_EDGE, VIEWER_MAX_B64

    path = Path(image.path)
    try:
        if size == "full":
            data = await anyio.to_thread.run_sync(path.read_bytes)
            return ImageContent(type="image", data=base64.b64encode(data).decode("ascii"),
                                mime_type=image.mime)
        edge, budget = ((GALLERY_EDGE, GALLERY_MAX_B64) if size == "thumb"
                        else (VIEWER_EDGE, VIEWER_MAX_B64))
        preview = await cache.get(image.id, path, edge, budget)
    except (OSError, ValueError) as exc:
        raise ToolError(f"image {image.id} cannot be read from {path.name}: {exc}") from None
    return ImageContent(type="image", data=preview.data_b64, mime_type=preview.mime)


async def images_result(
    store: ImageStore, cache: ThumbCache, image_ids: list[str], size: str
) -> CallToolResult:
    """Large previews or the files themselves, with what the store knows of each."""
    records = []
    for image_id in image_ids:
        image = await store.get_image(image_id)
        if image is None:
            raise ToolError(f"no image with id {image_id!r} in this server's store; ids come "
                            "from a tool result or the gallery")
        try:
            records.append(await store.local_image(image))
        except ValueError as exc:  # StoreError: its shared object is gone
            raise ToolError(f"image {image_id} cannot be read: {exc}") from None
    blocks: list[ContentBlock] = [await _image_block(cache, im, size) for im in records]
    info = [{"id": im.id, "prompt": im.prompt, "model": im.model, "job_id": im.job_id,
             "revised_prompt": im.revised_prompt, "created_at": im.created_at}
            for im in records]
    return CallToolResult(content=blocks, structured_content={"images": info})


async def app_images(
    ctx: Context,
    image_ids: Annotated[list[str], Field(min_length=1, max_length=16,
                                          description="Ids of stored images (1-16).")],
    size: Annotated[Literal["thumb", "large", "full"], Field(
        description="'thumb': the gallery's thumbnail; 'large': a preview up to 1024 px; "
        "'full': the saved file itself.")] = "large",
) -> CallToolResult:
    """Images of the store for the viewer."""
    services = await services_of(ctx.request_context.lifespan_context)
    return await images_result(services.store, thumb_cache(services.settings), image_ids, size)


GalleryTool = Literal["generate_image", "edit_image", "gpt4o_image"]


async def app_gallery(
    ctx: Context,
    cursor: Annotated[str | None, Field(description="next_cursor of the previous page.")] = None,
    query: Annotated[str | None, Field(max_length=500,
                                       description="Words the prompt must contain.")] = None,
    model: Annotated[str | None, Field(max_length=100)] = None,
    tool: Annotated[GalleryTool | None, Field(description="The tool that made the image.")] = None,
    since: Annotated[str | None, Field(description="First day, YYYY-MM-DD (UTC).")] = None,
    until: Annotated[str | None, Field(description="Last day, YYYY-MM-DD (UTC).")] = None,
    job_id: Annotated[str | None, Field(max_length=200)] = None,
    limit: Annotated[int, Field(ge=1, le=200)] = PAGE_DEFAULT,
) -> CallToolResult:
    """One page of the gallery, newest first, each image with a cached thumbnail."""
    from ttapi_mcp.store.gallery import GalleryFilter

    services = await services_of(ctx.request_context.lifespan_context)
    wanted = GalleryFilter(query, model, tool, since, until, job_id)
    return await gallery_result(services.store, thumb_cache(services.settings), wanted,
                                cursor, limit)


async def gallery_result(
    store: ImageStore, cache: ThumbCache, wanted: GalleryFilter, cursor: str | None, limit: int
) -> CallToolResult:
    """A page as the app reads it (the MCP tool and the browser gallery share it)."""
    from ttapi_mcp.store import StoreError

    try:
        page = await gallery_document(store, cache, wanted, cursor, limit)
    except StoreError as exc:
        raise ToolError(str(exc)) from None
    text = f"{len(page['items'])} images" + (", more follow" if page["next_cursor"] else "")
    return CallToolResult(content=[TextContent(type="text", text=text)],
                          structured_content=page)


async def gallery_document(
    store: ImageStore, cache: ThumbCache, wanted: GalleryFilter, cursor: str | None, limit: int
) -> dict[str, Any]:
    from ttapi_mcp.store.gallery import Gallery
    from ttapi_mcp.thumbcache import GALLERY_EDGE, GALLERY_MAX_B64

    gallery = Gallery(store)
    items, next_cursor = await gallery.page(wanted, cursor, limit)
    thumbs: list[str] = [""] * len(items)

    async def fill(i: int, item: dict[str, Any]) -> None:
        try:
            path = await store.local_copy(Path(item["path"]), item.get("bytes"))
            p = await cache.get(item["id"], path, GALLERY_EDGE, GALLERY_MAX_B64)
            thumbs[i] = f"data:{p.mime};base64,{p.data_b64}"
        except (OSError, ValueError):
            thumbs[i] = ""  # a missing file shows as an empty tile, the page still loads

    async with anyio.create_task_group() as tg:
        for i, item in enumerate(items):
            tg.start_soon(fill, i, item)
    for item, thumb in zip(items, thumbs, strict=True):
        item["thumb"] = thumb
    page: dict[str, Any] = {"items": items, "next_cursor": next_cursor}
    if cursor is None:
        page["total"] = await gallery.total(wanted)
        page["models"] = await gallery.models()
    return page


async def show_gallery(ctx: Context) -> CallToolResult:
    """Open the gallery of every saved image (in hosts that render Apps)."""
    from ttapi_mcp.store.gallery import Gallery, GalleryFilter

    services = await services_of(ctx.request_context.lifespan_context)
    total = await Gallery(services.store).total(GalleryFilter())
    text = (f"The store holds {total} image{'s' if total != 1 else ''}; hosts that render "
            "MCP Apps show them in the gallery. Without it, list the resources "
            "(ttapi://images/{id}, newest first).")
    return CallToolResult(content=[TextContent(type="text", text=text)],
                          structured_content={"gallery": True, "total": total})


def build_apps() -> Apps:
    """The Apps extension: the page, bound tools and the app-only tools."""
    apps = Apps()
    apps.add_resource(FunctionResource(
        uri=VIEWER_URI, name="ttapi-mcp viewer", title="Image viewer and gallery",
        description="Shows image results large, with their metadata and actions, and the "
        "gallery of every saved image.", mime_type="text/html;profile=mcp-app",
        meta={"ui": {"csp": ResourceCsp().model_dump(by_alias=True, exclude_none=True),
                     "prefersBorder": True}},
        fn=app_html,
    ))
    apps.tool(resource_uri=VIEWER_URI, visibility=["app"], name="app_images",
              title="Viewer images", annotations=READ_ONLY,
              description="For the viewer app: large or full images of the store.")(app_images)
    apps.tool(resource_uri=VIEWER_URI, visibility=["app"], name="app_gallery",
              title="Gallery page", annotations=READ_ONLY,
              description="For the gallery app: one page of saved images with "
              "thumbnails.")(app_gallery)
    apps.tool(resource_uri=VIEWER_URI, visibility=["app"], name="app_partials",
              title="Partial images", annotations=READ_ONLY,
              description="For the viewer app: the newest partial image of each image of "
              "a pending streamed job.")(app_partials)
    apps.tool(resource_uri=VIEWER_URI, visibility=["model", "app"], name="show_gallery",
              title="Show gallery", annotations=READ_ONLY,
              description="Open the gallery of every image this server saved (newest "
              "first, searchable by prompt) for the person to browse, compare and reuse. "
              "Costs nothing.")(show_gallery)
    return apps
