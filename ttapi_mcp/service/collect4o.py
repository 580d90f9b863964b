"""Upstream image jobs after submit: watch, collect once across servers, save once.

Both job routes (GPT-4o image, kind "4o", and the async GPT route, kind "gpt") go through
here; only their HTTP calls differ (:mod:`.jobroutes`).

However many servers share the store, one at a time collects a job (polls TTAPI for it
and downloads its image): the one holding its collector claim (see :mod:`.upstream`).
Every other server that watches it follows its row, and takes over when the collector's
lease runs out. A job's image is saved exactly once, and every server returns it.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Any

import anyio

from ttapi_mcp.api import FourOJob, TTAPIError
from ttapi_mcp.api.errors import NotFoundError
from ttapi_mcp.store import JobRecord

from . import money
from .common import SaveContext, ServiceError, Services, readable, save_one, to_saved
from .crossproc import REREAD_SECONDS, StoreWatch
from .hooks import redact_hook_url
from .jobroutes import FOUR_O, GPT, JobRoute, model_of, route_of_params
from .results import ImageToolResult, NextCall, SavedImage
from .runner import LiveJob
from .upstream import CollectedElsewhere

log = logging.getLogger("ttapi_mcp.service")

WATCH_MAX_SECONDS = 6 * 3600.0
"""A job is watched at most this long; fetch_job can still collect it later."""
WATCH_MAX_FAILURES = 20


class UnknownJobError(ServiceError):
    """TTAPI answered 404 for the job id."""


def unknown_job(job_id: str) -> UnknownJobError:
    return UnknownJobError(
        f"TTAPI does not know job {job_id!r}. Check the id: it is the job_id returned by "
        "gpt4o_image (a UUID)."
    )


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


async def row_result(
    services: Services, record: JobRecord | None, params: dict[str, Any],
    message: str | None = "Already downloaded earlier; returning the saved image.",
) -> ImageToolResult | None:
    """The result a finished row holds (saved, or failed); None while it is open."""
    if record is not None and record.status == "SUCCESS" and record.image_ids:
        return await _stored_result(services, record, params, message)
    if record is not None and record.status == "FAILED":
        return _failed_result(record.job_id, record.message, params, None)
    return None


async def check_once(
    services: Services, job_id: str, record: JobRecord | None, params: dict[str, Any],
    route: JobRoute | None,
) -> tuple[ImageToolResult, JobRoute | None]:
    """Ask TTAPI once (and save the image if it is ready), unless another live server
    collects this job: then answer from its row. Returns the route the job was found on
    (an id never seen here is tried on both)."""
    store = services.store
    try:
        if record is None or await store.claim_collector(job_id):
            job, route = await _fetch_on_either(services, job_id, route)
            if record is None:  # never submitted here: its route is all we know of it
                params = {**params, "model": route.unrecorded_model}
                await store.upsert_job(job_id, route.kind, job.prompt, job.status,
                                       request_args=params)
            return await _settle(services, job, params), route
    except CollectedElsewhere:
        pass
    finally:
        if services.require_runner().find(job_id) is None:  # no watcher here keeps it
            with anyio.CancelScope(shield=True):
                await store.release_collector(job_id)
    fresh = await store.get_job(job_id) or record
    done = await row_result(services, fresh, params)
    status = fresh.status if fresh else "SUBMITTED"
    return done or pending_result(job_id, status, params), route


async def _fetch_on_either(
    services: Services, job_id: str, route: JobRoute | None
) -> tuple[FourOJob, JobRoute]:
    """Fetch on the job's route; an id never seen here is tried on both routes."""
    if route is not None:
        return await _fetch_once(services, job_id, route), route
    try:
        return await _fetch_once(services, job_id, FOUR_O), FOUR_O
    except UnknownJobError:
        pass
    try:
        return await _fetch_once(services, job_id, GPT), GPT
    except UnknownJobError:
        raise UnknownJobError(
            f"TTAPI does not know job {job_id!r} on either job route (GPT-4o image, async "
            "GPT). Check the id: it is the job_id returned by gpt4o_image (a UUID)."
        ) from None


async def _fetch_once(services: Services, job_id: str, route: JobRoute = FOUR_O) -> FourOJob:
    client = services.require_client()
    try:
        job = await route.fetch(client, job_id)
    except NotFoundError:
        raise unknown_job(job_id) from None
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
    """Download the result once, in the one server holding the job's collector claim;
    concurrent callers here wait for the first download (CollectedElsewhere: not us)."""
    async with services.job_lock(job.job_id):
        record = await services.store.get_job(job.job_id)
        if record is not None and record.image_ids:
            return await _stored_result(services, record, params)
        if not await services.store.claim_collector(job.job_id):
            raise CollectedElsewhere(job.job_id)
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
    services: Services, record: JobRecord, params: dict[str, Any],
    message: str | None = "Already downloaded earlier; returning the saved image.",
) -> ImageToolResult:
    images: list[SavedImage] = []
    for index, image_id in enumerate(record.image_ids):
        stored = await services.store.get_image(image_id)
        if stored is not None:
            images.append(to_saved(await readable(services, stored), index))
    quota = (record.upstream or {}).get("quota")
    return ImageToolResult(
        status="completed", model=model_of(params), parameters=params, images=images,
        quota=float(quota) if isinstance(quota, (int, float, str)) and _is_number(quota) else None,
        job_id=record.job_id, job_status="SUCCESS", message=message,
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
        job_status="FAILED", quota=quota, message=message or "TTAPI gave no reason",
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
        """Each poll and the save already updated the row; only the claim is left."""
        await services.store.release_collector(job.job_id)

    return runner.start(job, work, finish)


async def _poll(
    services: Services, job: LiveJob, params: dict[str, Any], first_delay: float,
    route: JobRoute,
) -> ImageToolResult:
    """Collect the job if this server holds (or can take) its collector claim, else
    follow its row, taking over when the collector's lease runs out."""
    settings, store = services.settings, services.store
    deadline = anyio.current_time() + WATCH_MAX_SECONDS
    delay, interval = first_delay, settings.poll_interval
    failures = 0
    watch = StoreWatch(services)  # for following the row while another server collects
    while anyio.current_time() < deadline:
        with anyio.move_on_after(delay):
            await job.wake.wait()
        job.wake = anyio.Event()
        record = await store.get_job(job.job_id)
        done = await row_result(services, record, params, message=None)
        if done is not None:
            return done
        if record is not None and not await _may_collect(services, record):
            job.upstream_status = record.status
            job.show_phase(record.phase or f"TTAPI job {record.status}")
            await watch.next(REREAD_SECONDS, job.wake)
            delay = 0.0
            continue
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
            log.warning("polling %s %s failed (%d): %s", route.label, job.job_id, failures, exc)
            delay = min(interval * 2, settings.poll_max_interval)
            continue
        job.upstream_status = upstream.status
        if upstream.is_terminal:
            job.set_phase(f"TTAPI job {upstream.status}; downloading")
            try:
                return await _settle(services, upstream, params)
            except CollectedElsewhere:
                delay = 0.0
                continue
        job.set_phase(f"TTAPI job {upstream.status}")
        delay, interval = interval, min(interval * 1.5, settings.poll_max_interval)
    raise ServiceError(
        f"Stopped watching job {job.job_id} after {WATCH_MAX_SECONDS / 3600:.0f} hours; "
        "call fetch_job later to check it."
    )


async def _may_collect(services: Services, record: JobRecord) -> bool:
    """Whether this server holds the job's collector claim, or just took it.

    The claim (a conditional UPDATE) is only tried when the row shows no live collector,
    so a follower does not take the write lock on every look; the claim decides."""
    store = services.store
    mine = record.collector_id == store.owner.instance_id
    free = record.collector_until is None or record.collector_until <= time.time()
    return (mine or free) and await store.claim_collector(record.job_id)
