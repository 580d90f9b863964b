"""GPT-4o image jobs: submit, wait within a budget, fetch, and save the result once.

A job id is recorded in the store the moment TTAPI returns it, before anything else
can fail, so it is never lost. Waiting stops before the client's own time-out (the
wait budget) and answers "pending" with the exact fetch_job call to make next.
"""

from __future__ import annotations

import logging
import re
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import anyio

from ttapi_mcp.api import FourOJob, TTAPIError
from ttapi_mcp.api.errors import NotFoundError
from ttapi_mcp.catalog.asyncjobs import validate_async_job
from ttapi_mcp.store import JobRecord

from . import money
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
from .hooks import bind_hook, new_hook, redact_hook_url
from .jobroutes import FOUR_O, GPT, JobRoute, model_of, route_of_kind, route_of_params
from .localjobs import fetch_local
from .progress import ticking
from .results import ImageToolResult, NextCall, SavedImage
from .runner import LiveJob, is_local

log = logging.getLogger("ttapi_mcp.service")

PROMPT_MAX = 32000
REFER_IMAGES_MAX = 16
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
WATCH_MAX_SECONDS = 6 * 3600.0
"""A 4o job is watched at most this long; fetch_job can still collect it later."""
WATCH_MAX_FAILURES = 20


class UnknownJobError(ServiceError):
    """TTAPI answered 404 for the job id."""


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
        model=model_of(params),
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
    *,
    model: str | None = None,
    aspect_ratio: str | None = None,
    size: str | None = None,
    confirmed: float | None = None,
) -> ImageToolResult:
    """Submit a 4o job, record it at once, watch it in the background, wait (if asked).

    ``model`` other than gpt-4o-image goes to the async GPT route (§11.6), with the same
    recording, watching, hooks and recovery; its kind ("gpt") is kept in the job row.
    Its estimate is reserved first (``money.admit``) and settled when the job ends.

    In HTTP mode with ``public_base_url`` set, TTAPI is given a hook URL on this server
    (see :mod:`.hooks`), unless the caller passed their own ``hook_url``, which wins:
    then only polling tells this server the job ended.
    """
    refs = list(refer_images or [])
    problems = _validate_submit(prompt, refs, hook_url)
    problems += [f"- {v.message}" for v in validate_async_job(model, aspect_ratio, size)]
    if problems:
        head = "The job was not submitted (nothing was billed):"
        raise ServiceError("\n".join([head, *problems]))
    settings = services.settings
    budget = settings.wait_budget_seconds if wait else 0.0
    async with ticking(progress, settings.progress_interval_seconds, budget) as ticker:
        client = services.require_client()
        params: dict[str, Any] = {"prompt": prompt}
        if refs:
            params["refer_images"] = refs
        if hook_url:
            params["hook_url"] = hook_url
        extra = {"model": model, "aspect_ratio": aspect_ratio, "size": size}
        params.update({k: v for k, v in extra.items() if v is not None})
        route = route_of_params(params)
        own_hook = None if hook_url else new_hook(services)
        sent = {**params, "hook_url": own_hook[0]} if own_hook else params
        quote = money.quote_job(settings, params.get("model"), params.get("size"))
        await money.announce(ticker, quote)
        ledger_id = await money.admit(services, quote, tool="gpt4o_image",
                                      model=str(params.get("model") or "gpt-4o-image"),
                                      route=route.request_route, confirmed=confirmed)
        # Awaited: the job row is only written once TTAPI has answered with its id.
        request_id = await services.store.start_request(
            "gpt4o_image", route.request_route, params, wait=True
        )
        runner = services.require_runner()
        if runner.limiter.available_tokens < 1:
            ticker.set("queued: all upstream slots busy")
        async with runner.limiter:
            ticker.set(f"submitting the {route.label}")
            try:
                job_id = await route.submit(client, sent)
            except TTAPIError as exc:
                await services.store.finish_request(request_id, "error", error=str(exc))
                await money.settle(services, ledger_id, billed=exc.may_have_been_billed,
                                   outcome="error")
                raise upstream_error(exc) from None
        await money.attach_job(services, ledger_id, job_id)
        recorded: dict[str, Any] = {**params, "request_id": request_id}
        if own_hook:
            bind_hook(services, own_hook[1], job_id)
            recorded.update(hook_id=own_hook[1], hook_sha256=own_hook[2])
        with anyio.CancelScope(shield=True):
            await services.store.upsert_job(
                job_id, route.kind, prompt, "SUBMITTED", request_args=recorded
            )
            await services.store.finish_request(request_id, "pending")
        log.info("4o job %s submitted", job_id)
        if not wait:  # the caller collects it with fetch_job (or our hook wakes a watcher)
            return money.finish(services, pending_result(job_id, "SUBMITTED", params), quote)
        watcher = watch_4o(services, job_id, params, settings.poll_first_delay)
        result = await services.require_runner().wait(
            watcher, ticker, budget, lambda j: pending_result(j.job_id, j.upstream_status, params)
        )
        return money.finish(services, result.model_copy(), quote)


async def fetch_job(
    services: Services, job_id: str, wait: bool = False, progress: ProgressFn = no_progress
) -> ImageToolResult:
    """A job's state: local jobs from this server, or TTAPI 4o jobs (image saved once)."""
    job_id = job_id.strip()
    if not _JOB_ID.match(job_id):
        raise ServiceError(
            f"job_id {job_id[:80]!r} is not a job id: pass the job_id a previous tool call "
            "returned (letters, digits, '-', '_', up to 128 characters)."
        )
    settings = services.settings
    budget = settings.wait_budget_seconds if wait else 0.0
    async with ticking(progress, settings.progress_interval_seconds, budget) as ticker:
        if is_local(job_id):
            return await fetch_local(services, job_id, wait, ticker)
        record = await services.store.get_job(job_id)
        params = _params_of(record)
        if record is not None and record.status == "SUCCESS" and record.image_ids:
            return await _stored_result(services, record, params)
        if record is not None and record.status == "FAILED":
            return _failed_result(job_id, record.message, params, None)
        runner = services.require_runner()
        watcher = runner.find(job_id)
        route = route_of_kind(record.kind) if record is not None else None
        if watcher is None or not wait:
            job, route = await _fetch_on_either(services, job_id, route)
            if job.is_terminal or not wait:
                return await _settle(services, job, params)
        watcher = watch_4o(services, job_id, params, settings.poll_interval, route)
        return await runner.wait(
            watcher, ticker, budget, lambda j: pending_result(j.job_id, j.upstream_status, params)
        )


def _params_of(record: JobRecord | None) -> dict[str, Any]:
    if record is None or not record.request_args:
        return {"prompt": record.prompt} if record and record.prompt else {}
    hidden = ("request_id", "hook_id", "hook_sha256")
    return {k: v for k, v in record.request_args.items() if k not in hidden}


async def _fetch_on_either(
    services: Services, job_id: str, route: JobRoute | None
) -> tuple[FourOJob, JobRoute]:
    """Fetch on the job's route; an id never seen here is tried on both routes."""
    if route is not None:
        return await _fetch_once(services, job_id, route), route
    try:
        return await _fetch_once(services, job_id, FOUR_O), FOUR_O
    except UnknownJobError:
        return await _fetch_once(services, job_id, GPT), GPT


async def _fetch_once(services: Services, job_id: str, route: JobRoute = FOUR_O) -> FourOJob:
    client = services.require_client()
    try:
        job = await route.fetch(client, job_id)
    except NotFoundError:
        raise UnknownJobError(
            f"TTAPI does not know job {job_id!r}. Check the id: it is the job_id returned by "
            "gpt4o_image (a UUID)."
        ) from None
    except TTAPIError as exc:
        raise ServiceError(_fetch_failed(job_id, exc)) from None
    upstream = job.model_dump(mode="json", by_alias=True)
    upstream["hookUrl"] = redact_hook_url(job.hook_url)  # our hook URL carries a token
    await services.store.upsert_job(
        job_id, route.kind, job.prompt, job.status, message=job.message, upstream=upstream
    )
    await money.job_ended(services, job_id, job.status, _quota(job))
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
            model=model_of(params), prompt=job.prompt or str(params.get("prompt", "")),
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
        status="completed", model=model_of(params), parameters=params,
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
        status="completed", model=model_of(params), parameters=params, images=images,
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
        status="failed", model=model_of(params), parameters=params, job_id=job_id,
        job_status="FAILED",
        quota=quota, message=message or "TTAPI gave no reason",
    )


def watch_4o(
    services: Services, job_id: str, params: dict[str, Any], first_delay: float,
    route: JobRoute | None = None,
) -> LiveJob:
    """The job's background watcher, started if none runs: polls until the job ends,
    then saves its image once. A hook for the job wakes it at once (``LiveJob.poke``).

    Watchers run for jobs someone waits for (they keep going when the caller's budget
    ends), for jobs resumed after a restart and for jobs whose hook arrived; a job
    submitted with wait=false is fetched when the caller asks (or its hook comes)."""
    runner = services.require_runner()
    live = runner.find(job_id)
    if live is not None:
        return live
    route = route or route_of_params(params)
    job = LiveJob(job_id=job_id, kind=route.kind, model=model_of(params), committed=True)
    job.upstream_status, job.phase = "SUBMITTED", "submitted to TTAPI"

    async def work(job: LiveJob) -> ImageToolResult:
        return await _poll(services, job, params, first_delay, route)

    async def finish(job: LiveJob) -> None:
        """Nothing to add: each poll and the save already updated the job's row."""

    return runner.start(job, work, finish)


async def _poll(
    services: Services, job: LiveJob, params: dict[str, Any], first_delay: float,
    route: JobRoute = FOUR_O,
) -> ImageToolResult:
    settings = services.settings
    deadline = anyio.current_time() + WATCH_MAX_SECONDS
    delay, interval = first_delay, settings.poll_interval
    failures = 0
    while anyio.current_time() < deadline:
        with anyio.move_on_after(delay):
            await job.wake.wait()
        job.wake = anyio.Event()
        record = await services.store.get_job(job.job_id)
        if record is not None and record.status == "SUCCESS" and record.image_ids:
            return await _stored_result(services, record, params)
        try:
            upstream = await _fetch_once(services, job.job_id, route)
        except UnknownJobError:
            raise
        except ServiceError as exc:
            failures += 1
            if job.waiters or failures >= WATCH_MAX_FAILURES:
                # Someone waits: they get this error, which says how to check again (as a
                # status check of their own would); nobody waits: keep trying, backing off.
                raise
            log.warning("polling 4o job %s failed (%d): %s", job.job_id, failures, exc)
            delay = min(interval * 2, settings.poll_max_interval)
            continue
        job.upstream_status = upstream.status
        if upstream.is_terminal:
            job.set_phase(f"TTAPI job {upstream.status}; downloading")
            return await _settle(services, upstream, params)
        job.set_phase(f"TTAPI job {upstream.status}")
        delay, interval = interval, min(interval * 1.5, settings.poll_max_interval)
    raise ServiceError(
        f"Stopped watching job {job.job_id} after {WATCH_MAX_SECONDS / 3600:.0f} hours; "
        "call fetch_job later to check it."
    )
