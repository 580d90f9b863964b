"""generate_image and edit_image: validate at once, then run the paid part as a job.

Validation (and, for edits, resolving the inputs) happens in the call, so a mistake
comes back at once as a tool error and no job exists. The upstream request, the
download and the saves run as a background job (see :mod:`.runner`) that the call
waits for within the budget; its phase (queued, uploading, waiting for TTAPI, saving)
is what the progress notifications say.
"""

from __future__ import annotations

import logging
import time
from contextlib import AsyncExitStack
from typing import Any

from ttapi_mcp.api import (
    EditRequest,
    GenerationRequest,
    ImagesResponse,
    LegacyDalle3Request,
    TTAPIError,
)
from ttapi_mcp.catalog import MODELS, upstream_options, validate_edit, validate_generation

from . import money
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
from .dedupe import call_key, file_hashes
from .inputs import check_edit, resolve_edit_inputs
from .localjobs import run_local
from .partials import apply_default, partial_saver, stream_missing
from .progress import Ticker, ticking
from .results import ImageToolResult
from .runner import LiveJob

log = logging.getLogger("ttapi_mcp.service")


async def generate_image(
    services: Services,
    args: dict[str, Any],
    progress: ProgressFn = no_progress,
    *,
    wait: bool = True,
    dedupe: bool = True,
    preview_edge: int | None = None,
    confirmed: float | None = None,
) -> ImageToolResult:
    """Validate at once, then call E1 (or E3 for dall-e-3 when so configured) as a job.

    ``confirmed``: the quota the user agreed to spend (see ``money.admit``)."""
    settings = services.settings
    interval = settings.progress_interval_seconds
    async with ticking(progress, interval, settings.wait_budget_seconds) as ticker:
        ticker.set("validating")
        client = services.require_client()
        params = {k: v for k, v in args.items() if v is not None}
        params.setdefault("model", settings.default_generate_model)
        apply_default(settings, params)
        legacy = params["model"] == "dall-e-3" and settings.dalle3_route == "legacy"
        violations = validate_generation(params, route="legacy" if legacy else "v1")
        if violations:
            raise violations_error(violations)
        sent = upstream_options(params)
        if legacy:
            sent.setdefault("size", "1024x1024")
        quote = money.priced(settings, sent, legacy=legacy)
        await money.announce(ticker, quote)

        async def work(job: LiveJob) -> ImageToolResult:
            route = "E3" if legacy else "E1"
            await _queue(services, job)
            async with services.require_runner().limiter:
                request_id = await services.store.start_request("generate_image", route, sent)
                job.set_phase(f"waiting for TTAPI ({sent['model']})")
                job.commit()
                started = time.monotonic()
                try:
                    if legacy:
                        response = await client.generate_legacy_dalle3(LegacyDalle3Request(**sent))
                    else:
                        response = await client.generate(
                            GenerationRequest(**sent), partial_saver(services, job, sent))
                except TTAPIError as exc:
                    await services.store.finish_request(request_id, "error", error=str(exc))
                    raise upstream_error(exc) from None
            log.info("%s answered in %.1fs", route, time.monotonic() - started)
            return await _finish(services, request_id, sent, response, _phase_progress(job),
                                 preview_edge)

        admit = money.admitter(services, quote, tool="generate_image", model=str(sent["model"]),
                               route="E3" if legacy else "E1", confirmed=confirmed)
        result = await run_local(
            services, kind="generate", model=str(sent["model"]), prompt=str(sent["prompt"]),
            args=sent, key=call_key("generate_image", sent), work=work, ticker=ticker,
            wait=wait, dedupe=dedupe, admit=admit,
        )
        return money.finish(services, result, quote)


async def edit_image(
    services: Services,
    args: dict[str, Any],
    progress: ProgressFn = no_progress,
    *,
    wait: bool = True,
    dedupe: bool = True,
    preview_edge: int | None = None,
    confirmed: float | None = None,
) -> ImageToolResult:
    """Resolve and check every input image at once, then upload to E2 as a job."""
    settings = services.settings
    interval = settings.progress_interval_seconds
    async with ticking(progress, interval, settings.wait_budget_seconds) as ticker:
        ticker.set("validating the input images")
        client = services.require_client()
        params = {k: v for k, v in args.items() if v is not None and k not in ("images", "mask")}
        params.setdefault("model", settings.default_edit_model)
        apply_default(settings, params)
        refs: list[str] = list(args.get("images") or [])
        mask_ref: str | None = args.get("mask")
        if _by_url(services, params, [*refs, *([mask_ref] if mask_ref else [])]):
            return await _edit_by_url(services, params, refs, mask_ref, ticker, wait=wait,
                                      dedupe=dedupe, preview_edge=preview_edge,
                                      confirmed=confirmed)
        async with AsyncExitStack() as stack:
            inputs = await stack.enter_async_context(
                resolve_edit_inputs(services, refs, mask_ref)
            )
            violations = await check_edit(services, params, inputs)
            if inputs.errors or violations:
                raise violations_error(violations, inputs.errors)
            sent = upstream_options(params)
            quote = money.priced(settings, sent, input_images=len(refs))
            await money.announce(ticker, quote)
            recorded = {**sent, "images": refs, "mask": mask_ref}
            masks = [inputs.mask_path] if inputs.mask_path is not None else []
            hashes = await file_hashes([*inputs.paths, *masks])
            key = call_key("edit_image", {**sent, "mask": bool(masks)}, hashes)
            uploads, mask_upload = inputs.uploads, inputs.mask_upload

            async def work(job: LiveJob) -> ImageToolResult:
                await _queue(services, job)
                async with services.require_runner().limiter:
                    request_id = await services.store.start_request("edit_image", "E2", recorded)
                    job.set_phase(f"uploading {len(uploads) + len(masks)} file(s)")
                    last_note = [time.monotonic()]

                    def on_sent(done: int, total: int) -> None:
                        """Upload progress; the last byte read commits the job (it may now
                        reach TTAPI, so it must not be cancelled any more)."""
                        if done >= total and not job.committed:
                            job.commit()
                            job.set_phase(f"uploaded {total} of {total} bytes; waiting for "
                                          f"TTAPI ({sent['model']})")
                        elif not job.committed:
                            job.phase = f"uploading: {done} of {total} bytes sent"
                            if time.monotonic() - last_note[0] >= 1.0:  # at most 1 note/s
                                last_note[0] = time.monotonic()
                                job.set_phase(job.phase)

                    try:
                        response = await client.edit(
                            EditRequest(**sent), uploads, mask_upload, on_sent=on_sent,
                            on_partial=partial_saver(services, job, sent),
                        )
                    except TTAPIError as exc:
                        await services.store.finish_request(request_id, "error", error=str(exc))
                        raise upstream_error(exc) from None
                    job.commit()
                return await _finish(services, request_id, recorded, response,
                                     _phase_progress(job), preview_edge)

            admit = money.admitter(services, quote, tool="edit_image", route="E2",
                                   model=str(sent["model"]), confirmed=confirmed)
            result = await run_local(
                services, kind="edit", model=str(sent["model"]), prompt=str(sent["prompt"]),
                args=recorded, key=key, work=work, ticker=ticker, wait=wait, dedupe=dedupe,
                cleanup=stack.pop_all(), admit=admit,
            )
            return money.finish(services, result, quote)


def _by_url(services: Services, params: dict[str, Any], refs: list[str]) -> bool:
    """The JSON edit form (§11.5) is used when configured, for GPT models, and only when
    every input is an http(s) URL: then TTAPI fetches them and nothing is uploaded."""
    settings = services.settings
    spec = MODELS.get(str(params.get("model")))
    return (settings.edit_json_for_urls and settings.allow_url_inputs and spec is not None
            and spec.family == "gpt" and bool(refs)
            and all(ref.lower().startswith(("http://", "https://")) for ref in refs))


async def _edit_by_url(
    services: Services, params: dict[str, Any], refs: list[str], mask_ref: str | None,
    ticker: Ticker, *, wait: bool, dedupe: bool, preview_edge: int | None,
    confirmed: float | None = None,
) -> ImageToolResult:
    """Edit by URL: the parameter rules are checked here; the images only TTAPI sees."""
    violations = [v for v in validate_edit(params, [], None)
                  if not v.param.startswith(("images", "mask"))]
    if violations:
        raise violations_error(violations)
    client = services.require_client()
    sent = upstream_options(params)
    quote = money.priced(services.settings, sent, input_images=len(refs))
    await money.announce(ticker, quote)
    recorded = {**sent, "images": refs, "mask": mask_ref}

    async def work(job: LiveJob) -> ImageToolResult:
        await _queue(services, job)
        async with services.require_runner().limiter:
            request_id = await services.store.start_request("edit_image", "E2", recorded)
            job.set_phase(f"waiting for TTAPI ({sent['model']}, images by URL)")
            job.commit()
            try:
                response = await client.edit_by_url(EditRequest(**sent), refs, mask_ref,
                                                    partial_saver(services, job, sent))
            except TTAPIError as exc:
                await services.store.finish_request(request_id, "error", error=str(exc))
                raise upstream_error(exc) from None
        return await _finish(services, request_id, recorded, response, _phase_progress(job),
                             preview_edge)

    admit = money.admitter(services, quote, tool="edit_image", route="E2",
                           model=str(sent["model"]), confirmed=confirmed)
    result = await run_local(
        services, kind="edit", model=str(sent["model"]), prompt=str(sent["prompt"]),
        args=recorded, key=call_key("edit_image", recorded), work=work, ticker=ticker,
        wait=wait, dedupe=dedupe, admit=admit,
    )
    return money.finish(services, result, quote)


async def _queue(services: Services, job: LiveJob) -> None:
    """Say 'queued' when every upstream slot is taken (the limiter wakes waiters in order)."""
    limiter = services.require_runner().limiter
    if limiter.available_tokens < 1:
        ahead = int(limiter.statistics().tasks_waiting)
        job.set_phase(f"queued: all {int(limiter.total_tokens)} upstream slots busy, "
                      f"{ahead} call(s) ahead")


def _phase_progress(job: LiveJob) -> ProgressFn:
    """Service progress (downloading, saving) becomes the job's phase."""

    async def report(done: float, total: float | None, message: str) -> None:
        job.set_phase(message)

    return report


async def _finish(
    services: Services,
    request_id: str,
    sent: dict[str, Any],
    response: ImagesResponse,
    progress: ProgressFn,
    preview_edge: int | None = None,
) -> ImageToolResult:
    ctx = SaveContext(
        model=str(sent["model"]), prompt=str(sent["prompt"]),
        parameters={k: v for k, v in sent.items() if k != "prompt"}, request_id=request_id,
        preview_edge=preview_edge,
    )
    saved, missing = await save_response(services, ctx, response, progress)
    missing += stream_missing(len(response.data), response.stream_missing,
                              response.stream_problems)
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
    result = ImageToolResult(
        status="partial" if missing else "completed",
        model=ctx.model,
        parameters=effective,
        images=saved,
        missing=missing,
        usage=usage,
        message="; ".join(m.error for m in missing) or None,
    )
    result.add_previews(preview_edge, ctx.previews)
    return result


__all__ = ["edit_image", "generate_image"]
