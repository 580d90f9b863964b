"""Resources: saved images, job status and the model catalog.

Images are listed newest first with cursor pagination straight from the store, so
a folder of thousands of images never lands in one answer; each is read back as its
bytes with its own MIME type (PNG, JPEG or WebP).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from mcp_types import Resource

from ttapi_mcp.catalog import catalog_as_json

from .startup import services_of

if TYPE_CHECKING:  # loaded with the lifespan, not to declare resources (see server.app)
    from ttapi_mcp.service import Services
    from ttapi_mcp.store import ImageSummary

IMAGE_PREFIX = "ttapi://images/"
JOB_PREFIX = "ttapi://jobs/"
JOBS_URI = "ttapi://jobs"
USAGE_URI = "ttapi://usage"
PAGE_SIZE = 50
JOBS_LISTED = 50


def image_resource(image: ImageSummary) -> Resource:
    """How one saved image appears in resources/list: the prompt once (as the title), so
    a page of 50 stays small in the client and in an agent's context."""
    size = f"{image.width}x{image.height}" if image.width and image.height else "unknown size"
    prompt = (image.prompt or "")[:120]
    return Resource(
        uri=f"{IMAGE_PREFIX}{image.id}",
        name=image.file_name,
        title=prompt or image.file_name,
        description=f"{image.model or 'image'}, {size}",
        mime_type=image.mime,
        size=image.bytes,
    )


async def list_image_page(
    services: Services, cursor: str | None
) -> tuple[list[Resource], str | None]:
    from ttapi_mcp.store import StoreError

    try:
        images, next_cursor = await services.store.list_images(PAGE_SIZE, cursor)
    except StoreError as exc:
        from mcp.shared.exceptions import MCPError
        from mcp_types import INVALID_PARAMS

        raise MCPError(code=INVALID_PARAMS, message=str(exc)) from None
    return [image_resource(im) for im in images], next_cursor


async def read_image(services: Services, image_id: str) -> ReadResourceContents:
    image = await services.store.get_image(image_id)
    if image is None:
        raise ResourceNotFoundError(
            f"No saved image has id {image_id!r}; list resources to see the saved images."
        )
    try:
        path = await services.store.local_copy(image.path, image.bytes)
        data = await anyio.to_thread.run_sync(path.read_bytes)
    except (OSError, ValueError):  # StoreError: the shared object is gone
        raise ResourceNotFoundError(
            f"Image {image_id} is recorded but its file {image.path} is missing or unreadable."
        ) from None
    return ReadResourceContents(content=data, mime_type=image.mime)


async def job_json(services: Services, job_id: str) -> str:
    record = await services.store.get_job(job_id)
    if record is None:
        raise ResourceNotFoundError(
            f"No job {job_id!r} is recorded here; call fetch_job to look it up at TTAPI."
        )
    data: dict[str, Any] = record.model_dump(mode="json")
    data["image_uris"] = [f"{IMAGE_PREFIX}{i}" for i in record.image_ids]
    return json.dumps(data, indent=2, ensure_ascii=False)


async def jobs_json(services: Services) -> str:
    """Recent jobs in brief; ``ttapi://jobs/{job_id}`` has each one in full."""
    live = services.runner.live if services.runner is not None else {}
    rows = []
    for record in await services.store.list_jobs(JOBS_LISTED):
        running = live.get(record.job_id)
        rows.append({
            "job_id": record.job_id, "kind": record.kind, "status": record.status,
            "phase": running.phase if running is not None else record.phase,
            "prompt": (record.prompt or "")[:120], "message": record.message,
            "created_at": record.created_at, "finished_at": record.finished_at,
            "uri": f"{JOB_PREFIX}{record.job_id}",
            "image_uris": [f"{IMAGE_PREFIX}{i}" for i in record.image_ids],
        })
    return json.dumps({"jobs": rows}, indent=2, ensure_ascii=False)


async def usage_json(services: Services) -> str:
    from ttapi_mcp.service.usage import usage_report

    report = await usage_report(services.store, services.settings, services.clock())
    return json.dumps(report, indent=2)


async def _services(ctx: Context) -> Services:
    return await services_of(ctx.request_context.lifespan_context)


def register_resources(server: MCPServer) -> None:
    """Declare the static resource and the templates (image reads are routed by the app)."""

    @server.resource(
        "ttapi://models", name="models", title="Image models and their rules",
        description="Every model this server knows: sizes, qualities, options, limits.",
        mime_type="application/json",
    )
    def models() -> str:
        from ttapi_mcp.catalog.prices import merge_prices, prices_as_json

        doc = catalog_as_json()
        settings = getattr(server, "ttapi_settings", None)
        doc["prices"] = prices_as_json(merge_prices(getattr(settings, "prices", None)))
        return json.dumps(doc, indent=2)


    @server.resource(
        "ttapi://images/{image_id}", name="image", title="Saved image",
        description="A saved image's bytes (PNG, JPEG or WebP).", mime_type="image/png",
    )
    async def image(image_id: str, ctx: Context) -> bytes:
        contents = await read_image(await _services(ctx), image_id)
        assert isinstance(contents.content, bytes)
        return contents.content

    @server.resource(
        "ttapi://jobs", name="jobs", title="Recent jobs",
        description="The most recent jobs, newest first: id, kind, status, times, images.",
        mime_type="application/json",
    )
    def jobs() -> str:
        # Never called: the server answers this URI itself (it needs the lifespan context,
        # which static resources do not get); see TTAPIServer.read_resource.
        return json.dumps({"jobs": []})

    @server.resource(
        "ttapi://jobs/{job_id}", name="job", title="Job status",
        description="A job as last seen: status, message, result image URIs. Local jobs "
        "('local-...') are generate_image/edit_image calls; UUIDs are gpt4o_image jobs "
        "(the GPT-4o image route, or the async GPT route for gpt-image-* models).",
        mime_type="application/json",
    )
    async def job(job_id: str, ctx: Context) -> str:
        return await job_json(await _services(ctx), job_id)

    @server.resource(
        USAGE_URI, name="usage", title="Spend and budgets",
        description="Quota spent and reserved today and this month (estimates, and what "
        "TTAPI reported), by model and tool, and the budgets left: the account's and yours.",
        mime_type="application/json",
    )
    def usage() -> str:
        # Never called: the server answers this URI itself (see TTAPIServer.read_resource).
        return json.dumps({})
