"""GPT-4o image jobs: submit, wait within a budget, fetch, and save the result once.

A job id is recorded in the store the moment TTAPI returns it, before anything else
can fail, so it is never lost. Waiting stops before the client's own time-out (the
wait budget) and answers "pending" with the exact fetch_job call to make next.
"""

from __future__ import annotations

import logging
import re
import time
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import anyio

from ttapi_mcp.api import FourOJob, FourOSubmitRequest, TTAPIError
from ttapi_mcp.api.errors import NotFoundError
from ttapi_mcp.store import JobRecord

from .common import (
    ProgressFn,
    SaveContext,
    ServiceError,
    Services,
    no_progress,
    save_one,
    to_saved,
    upstream_error,
)
from .results import ImageToolResult, NextCall, SavedImage

log = logging.getLogger("ttapi_mcp.service")

MODEL_4O = "gpt-4o-image"
PROMPT_MAX = 32000
REFER_IMAGES_MAX = 16
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def _check_url(name: str, value: str, problems: list[str]) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        problems.append(
            f"- {name} {value[:80]!r} is not an http(s) URL; TTAPI fetches these itself, so "
            "they must be public http(s) addresses (local files cannot be passed here)."
        )


def _validate_submit(prompt: str, refer_images: list[str], hook_url: str | None) -> list[str]:
    problems: list[str] = []
    if not prompt.strip():
        problems.append("- prompt is required: describe the image, e.g. 'draw a red fox'.")
    elif len(prompt) > PROMPT_MAX:
        problems.append(f"- prompt has {len(prompt)} characters; at most {PROMPT_MAX}.")
    if len(refer_images) > REFER_IMAGES_MAX:
        problems.append(
            f"- refer_images has {len(refer_images)} URLs; at most {REFER_IMAGES_MAX}."
        )
    for i, url in enumerate(refer_images):
        _check_url(f"refer_images[{i}]", url, problems)
    if hook_url is not None:
        _check_url("hook_url", hook_url, problems)
    return problems


def _quota(job: FourOJob) -> float | None:
    return float(job.quota) if isinstance(job.quota, Decimal) else None


def pending_result(job_id: str, job_status: str, params: dict[str, Any]) -> ImageToolResult:
    return ImageToolResult(
        status="pending",
        model=MODEL_4O,
        parameters=params,
        job_id=job_id,
        job_status=job_status,
        message=(
            f"The job is still running upstream and is recorded here. Call "
            f"fetch_job(job_id={job_id!r}, wait=true) to wait for it and get the image."
        ),
        next_call=NextCall(tool="fetch_job", arguments={"job_id": job_id, "wait": True}),
    )


async def submit_gpt4o(
    services: Services,
    prompt: str,
    refer_images: list[str] | None = None,
    hook_url: str | None = None,
    wait: bool = True,
    progress: ProgressFn = no_progress,
) -> ImageToolResult:
    """Submit a 4o job, record it at once, then wait within the budget (if asked)."""
    refs = list(refer_images or [])
    problems = _validate_submit(prompt, refs, hook_url)
    if problems:
        head = "The job was not submitted (nothing was billed):"
        raise ServiceError("\n".join([head, *problems]))
    client = services.require_client()
    params: dict[str, Any] = {"prompt": prompt}
    if refs:
        params["refer_images"] = refs
    if hook_url:
        params["hook_url"] = hook_url
    request_id = await services.store.start_request("gpt4o_image", "E4", params)
    await progress(0, None, "submitting the GPT-4o image job")
    try:
        job_id = await client.submit_4o(FourOSubmitRequest(**params))
    except TTAPIError as exc:
        await services.store.finish_request(request_id, "error", error=str(exc))
        raise upstream_error(exc) from None
    with anyio.CancelScope(shield=True):
        await services.store.upsert_job(
            job_id, "4o", prompt, "SUBMITTED", request_args={**params, "request_id": request_id}
        )
        await services.store.finish_request(request_id, "pending")
    log.info("4o job %s submitted", job_id)
    if not wait:
        return pending_result(job_id, "SUBMITTED", params)
    return await _wait(services, job_id, params, services.settings.poll_first_delay, progress)


async def fetch_job(
    services: Services, job_id: str, wait: bool = False, progress: ProgressFn = no_progress
) -> ImageToolResult:
    """A job's state; on SUCCESS its image, downloaded and saved only once."""
    job_id = job_id.strip()
    if not _JOB_ID.match(job_id):
        raise ServiceError(
            f"job_id {job_id[:80]!r} is not a job id: pass the job_id a previous gpt4o_image "
            "call returned (letters, digits, '-', '_', up to 128 characters)."
        )
    record = await services.store.get_job(job_id)
    params = _params_of(record)
    if record is not None and record.status == "SUCCESS" and record.image_ids:
        return await _stored_result(services, record, params)
    if record is not None and record.status == "FAILED":
        return _failed_result(job_id, record.message, params, None)
    job = await _fetch_once(services, job_id)
    if job.is_terminal or not wait:
        return await _settle(services, job, params)
    return await _wait(services, job_id, params, services.settings.poll_interval, progress)


def _params_of(record: JobRecord | None) -> dict[str, Any]:
    if record is None or not record.request_args:
        return {"prompt": record.prompt} if record and record.prompt else {}
    return {k: v for k, v in record.request_args.items() if k != "request_id"}


async def _fetch_once(services: Services, job_id: str) -> FourOJob:
    client = services.require_client()
    try:
        job = await client.fetch_4o(job_id)
    except NotFoundError:
        raise ServiceError(
            f"TTAPI does not know job {job_id!r}. Check the id: it is the job_id returned by "
            "gpt4o_image (a UUID)."
        ) from None
    except TTAPIError as exc:
        raise ServiceError(_fetch_failed(job_id, exc)) from None
    await services.store.upsert_job(
        job_id, "4o", job.prompt, job.status, message=job.message,
        upstream=job.model_dump(mode="json", by_alias=True),
    )
    return job


def _fetch_failed(job_id: str, exc: TTAPIError) -> str:
    """A failed status check must not read as a failed (or unbilled) job.

    The job was submitted and may still finish and be billed; an agent told only that
    "nothing was billed" would submit it again and pay twice.
    """
    return (
        f"{exc} Only the status check failed: job {job_id} itself is not lost; it keeps "
        "running upstream (and is billed if it succeeds). Do not submit it again: call "
        f"fetch_job(job_id={job_id!r}, wait=true) to check it again."
    )


async def _wait(
    services: Services, job_id: str, params: dict[str, Any], first_delay: float,
    progress: ProgressFn,
) -> ImageToolResult:
    """Poll until a terminal status or the wait budget; never resubmits."""
    settings = services.settings
    started = time.monotonic()
    deadline = started + settings.wait_budget_seconds
    delay, interval = first_delay, settings.poll_interval
    status = "SUBMITTED"
    budget = settings.wait_budget_seconds
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return pending_result(job_id, status, params)
        await anyio.sleep(min(delay, remaining))
        job = await _fetch_once(services, job_id)
        status = job.status
        elapsed = time.monotonic() - started
        if job.is_terminal:
            return await _settle(services, job, params)
        await progress(
            min(elapsed, budget), budget or None, f"job {job_id}: {status} after {elapsed:.0f}s"
        )
        delay, interval = interval, min(interval * 1.5, settings.poll_max_interval)


async def _settle(services: Services, job: FourOJob, params: dict[str, Any]) -> ImageToolResult:
    if job.status == "FAILED":
        return _failed_result(job.job_id, job.message, params, _quota(job))
    if job.status != "SUCCESS":
        return pending_result(job.job_id, job.status, params)
    return await _save_job_image(services, job, params)


async def _save_job_image(
    services: Services, job: FourOJob, params: dict[str, Any]
) -> ImageToolResult:
    """Download the result once; concurrent callers wait for the first download."""
    async with services.job_lock(job.job_id):
        record = await services.store.get_job(job.job_id)
        if record is not None and record.image_ids:
            return await _stored_result(services, record, params)
        if not job.image_url:
            raise ServiceError(
                f"TTAPI reports job {job.job_id} as SUCCESS but gives no image URL; "
                "try fetch_job again later."
            )
        ctx = SaveContext(
            model=MODEL_4O, prompt=job.prompt or str(params.get("prompt", "")),
            parameters={k: v for k, v in params.items() if k != "prompt"}, job_id=job.job_id,
        )
        try:
            stored = await save_one(services, ctx, b64=None, url=job.image_url)
        except (TTAPIError, ValueError, OSError) as exc:
            raise ServiceError(
                f"Job {job.job_id} succeeded but its image could not be saved: {exc} "
                "Call fetch_job again to retry the download."
            ) from None
        await services.store.update_job(job.job_id, status="SUCCESS", image_ids=[stored.id])
    return ImageToolResult(
        status="completed", model=MODEL_4O, parameters=params,
        images=[to_saved(stored, 0)], quota=_quota(job), job_id=job.job_id, job_status="SUCCESS",
    )


async def _stored_result(
    services: Services, record: JobRecord, params: dict[str, Any]
) -> ImageToolResult:
    images: list[SavedImage] = []
    for index, image_id in enumerate(record.image_ids):
        stored = await services.store.get_image(image_id)
        if stored is not None:
            images.append(to_saved(stored, index))
    quota = (record.upstream or {}).get("quota")
    return ImageToolResult(
        status="completed", model=MODEL_4O, parameters=params, images=images,
        quota=float(quota) if isinstance(quota, (int, float, str)) and _is_number(quota) else None,
        job_id=record.job_id, job_status="SUCCESS",
        message="Already downloaded earlier; returning the saved image.",
    )


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _failed_result(
    job_id: str, message: str | None, params: dict[str, Any], quota: float | None
) -> ImageToolResult:
    return ImageToolResult(
        status="failed", model=MODEL_4O, parameters=params, job_id=job_id, job_status="FAILED",
        quota=quota, message=message or "TTAPI gave no reason",
    )
