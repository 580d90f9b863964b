"""generate_image and edit_image: synchronous TTAPI calls whose images are saved at once.

Each function takes a ``progress`` callback so the same code can later run as a
background job that reports its phase, without changing its steps.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ttapi_mcp.api import (
    EditRequest,
    GenerationRequest,
    ImagesResponse,
    LegacyDalle3Request,
    TTAPIError,
)
from ttapi_mcp.catalog import upstream_options, validate_generation

from .common import (
    ProgressFn,
    SaveContext,
    ServiceError,
    Services,
    no_progress,
    save_response,
    upstream_error,
    usage_dict,
    violations_error,
)
from .inputs import check_edit, resolve_edit_inputs
from .results import ImageToolResult

log = logging.getLogger("ttapi_mcp.service")


async def generate_image(
    services: Services, args: dict[str, Any], progress: ProgressFn = no_progress
) -> ImageToolResult:
    """Validate, call E1 (or E3 for dall-e-3 when so configured), save, describe."""
    settings = services.settings
    client = services.require_client()
    params = {k: v for k, v in args.items() if v is not None}
    params.setdefault("model", settings.default_generate_model)
    legacy = params["model"] == "dall-e-3" and settings.dalle3_route == "legacy"
    await progress(0, None, "validating")
    violations = validate_generation(params, route="legacy" if legacy else "v1")
    if violations:
        raise violations_error(violations)
    sent = upstream_options(params)
    route = "E3" if legacy else "E1"
    if legacy:
        sent.setdefault("size", "1024x1024")
    request_id = await services.store.start_request("generate_image", route, sent)
    started = time.monotonic()
    await progress(0, None, f"waiting for TTAPI ({params['model']})")
    try:
        if legacy:
            response = await client.generate_legacy_dalle3(LegacyDalle3Request(**sent))
        else:
            response = await client.generate(GenerationRequest(**sent))
    except TTAPIError as exc:
        await services.store.finish_request(request_id, "error", error=str(exc))
        raise upstream_error(exc) from None
    log.info("%s answered in %.1fs", route, time.monotonic() - started)
    return await _finish(services, request_id, sent, response, progress)


async def edit_image(
    services: Services, args: dict[str, Any], progress: ProgressFn = no_progress
) -> ImageToolResult:
    """Resolve and check every input image, upload to E2, save, describe."""
    client = services.require_client()
    params = {k: v for k, v in args.items() if v is not None and k not in ("images", "mask")}
    params.setdefault("model", services.settings.default_edit_model)
    refs: list[str] = list(args.get("images") or [])
    mask_ref: str | None = args.get("mask")
    await progress(0, None, "reading the input images")
    async with resolve_edit_inputs(services, refs, mask_ref) as inputs:
        violations = await check_edit(services, params, inputs)
        if inputs.errors or violations:
            raise violations_error(violations, inputs.errors)
        sent = upstream_options(params)
        recorded = {**sent, "images": refs, "mask": mask_ref}
        request_id = await services.store.start_request("edit_image", "E2", recorded)
        await progress(0, None, f"uploading {len(refs)} image(s) and waiting for TTAPI")
        try:
            response = await client.edit(EditRequest(**sent), inputs.uploads, inputs.mask_upload)
        except TTAPIError as exc:
            await services.store.finish_request(request_id, "error", error=str(exc))
            raise upstream_error(exc) from None
    return await _finish(services, request_id, recorded, response, progress)


async def _finish(
    services: Services,
    request_id: str,
    sent: dict[str, Any],
    response: ImagesResponse,
    progress: ProgressFn,
) -> ImageToolResult:
    ctx = SaveContext(
        model=str(sent["model"]), prompt=str(sent["prompt"]),
        parameters={k: v for k, v in sent.items() if k != "prompt"}, request_id=request_id,
    )
    saved, missing = await save_response(services, ctx, response, progress)
    usage = usage_dict(response)
    status = "ok" if not missing else ("partial" if saved else "error")
    error = "; ".join(m.error for m in missing) or None
    await services.store.finish_request(request_id, status, usage=usage, error=error)
    if not saved:
        detail = (error or "the answer held no image").rstrip(". ")
        raise ServiceError(
            "TTAPI answered (and the request was probably billed), but no image could be "
            f"saved: {detail}. Running the same call again will be billed again; check "
            "the TTAPI dashboard or usage first."
        )
    effective = dict(ctx.parameters)
    for key in ("size", "quality", "background", "output_format"):
        value = getattr(response, key, None)
        if value:
            effective[key] = value
    return ImageToolResult(
        status="partial" if missing else "completed",
        model=ctx.model,
        parameters=effective,
        images=saved,
        missing=missing,
        usage=usage,
        message="; ".join(m.error for m in missing) or None,
    )


__all__ = ["edit_image", "generate_image"]
