"""generate_image and edit_image calls as local jobs: start, attach, wait, record, fetch.

A local job is recorded (status ``running``, the request arguments) before anything is
sent, and its outcome when it ends: ``succeeded``, ``partial``, ``failed``,
``cancelled`` (stopped before reaching TTAPI: not billed) or ``interrupted`` (the
server stopped while it ran: maybe billed). ``fetch_job`` rebuilds a result from that
row, so it works after a restart too.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio

from ttapi_mcp.store import JobRecord

from .common import ServiceError, Services, readable, to_saved
from .crossproc import follow_row, row_phase
from .dedupe import recent_success, user_key
from .progress import Ticker
from .results import CostEstimate, ImageToolResult, MissingImage, NextCall
from .runner import LiveJob, Work, args_without_secrets, interrupted_message, new_local_id

log = logging.getLogger("ttapi_mcp.service")

RESULT_STATUS = {"completed": "succeeded", "partial": "partial"}
Admit = Callable[[Work, str], Awaitable[Work]]


async def run_local(
    services: Services,
    *,
    kind: str,
    model: str,
    prompt: str,
    args: dict[str, Any],
    key: str,
    work: Work,
    ticker: Ticker,
    wait: bool,
    dedupe: bool,
    cleanup: AsyncExitStack | None = None,
    admit: Admit | None = None,
) -> ImageToolResult:
    """Start (or attach to an identical) job, then wait for it within the budget.

    An identical job may run in this process (attach to it here) or in another server on
    the same store (attach through its row). ``cleanup`` (e.g. temporary input files)
    belongs to the job once it starts, and is closed here when no job is started.
    ``admit(work, job_id)``, called only when a job is about to start (an attached call
    pays nothing), may refuse it (budgets) by raising, or return the work to run instead
    (one that settles its reservation); a call that then attaches to another server's
    job gives its reservation back.
    """
    runner = services.require_runner()
    budget = services.settings.wait_budget_seconds if wait else 0.0
    key = user_key(key, services.store.current_user())  # never attach across users
    job: LiveJob | None = runner.running_with_key(key) if dedupe else None
    if job is None and dedupe:
        record = await recent_success(services.store, key, services.settings.dedupe_window_seconds)
        if record is not None:
            await _close(cleanup)
            result = await result_from_record(services, record)
            result.message = (
                f"An identical call (job {record.job_id}) succeeded recently; returning its "
                "images instead of paying again. Pass dedupe=false for a new draw."
            )
            return result
    if job is not None:
        await _close(cleanup)
        ticker.set(f"identical call already running as job {job.job_id}; attaching to it")
        return await runner.wait(job, ticker, budget, local_pending)
    job = LiveJob(job_id=new_local_id(), kind=kind, model=model,
                  dedupe_key=key if dedupe else None)
    recorded = {**args_without_secrets(args), "dedupe_key": key}
    if admit is not None:
        try:
            work = await admit(work, job.job_id)
        except BaseException:
            await _close(cleanup)
            raise
    try:
        with anyio.CancelScope(shield=True):
            started, created = await services.store.start_job(
                job.job_id, kind, prompt, "running", request_args=recorded,
                dedupe_key=key if dedupe else None, phase=job.phase,
            )
    except BaseException:  # nothing was sent: the inputs go, the reservation is given back
        await _close(cleanup)
        if admit is not None:
            await _release_reservation(services, job.job_id)
        raise
    if not created:  # another server runs this very call: wait for it through its row
        await _close(cleanup)
        if admit is not None:  # this call pays nothing: give its reservation back
            await _release_reservation(services, job.job_id)
        ticker.set(f"identical call already running as job {started.job_id} in another "
                   "server; attaching to it")
        return await wait_elsewhere(services, started.job_id, ticker, budget)
    runner.start(job, work, lambda j: finish_local(services, j), cleanup)
    return await runner.wait(job, ticker, budget, local_pending)


async def _release_reservation(services: Services, job_id: str) -> None:
    """Release the reservation a job that never started holds (never raises)."""
    from .money import settle

    with anyio.CancelScope(shield=True):
        try:
            ledger_id = await services.store.reservation_for_job(job_id)
        except Exception:
            log.exception("could not look up the ledger entry of job %s", job_id)
            return
        await settle(services, ledger_id, billed=False, outcome="attached")


async def _close(cleanup: AsyncExitStack | None) -> None:
    if cleanup is not None:
        with anyio.CancelScope(shield=True):
            await cleanup.aclose()


async def finish_local(services: Services, job: LiveJob) -> None:
    """Record a local job's outcome in its row (called shielded by the runner)."""
    now = time.time()
    if job.result is not None:
        result = job.result
        result.job_id = job.job_id
        result.job_status = RESULT_STATUS.get(result.status, "succeeded")
        upstream = {
            "model": result.model, "parameters": result.parameters, "usage": result.usage,
            "missing": [m.model_dump() for m in result.missing],
            "cost": result.cost.model_dump() if result.cost is not None else None,
        }
        await services.store.update_job(
            job.job_id, status=result.job_status, image_ids=[i.id for i in result.images],
            upstream=upstream, message=result.message, finished_at=now,
        )
        return
    status = job.upstream_status if job.upstream_status != "running" else "failed"
    await services.store.update_job(job.job_id, status=status, message=job.error,
                                    finished_at=now)


def local_pending(job: LiveJob) -> ImageToolResult:
    return _pending(job.job_id, job.model, job.phase)


def _pending(job_id: str, model: str, phase: str) -> ImageToolResult:
    return ImageToolResult(
        status="pending",
        model=model,
        job_id=job_id,
        job_status="running",
        message=(
            f"Still working ({phase}). The job continues in the background and its images "
            f"are saved when they arrive: call fetch_job(job_id={job_id!r}, wait=true) to "
            "wait for it again. Do not repeat the original call: that could pay twice."
        ),
        next_call=NextCall(tool="fetch_job", arguments={"job_id": job_id, "wait": True}),
    )


async def result_from_record(services: Services, record: JobRecord) -> ImageToolResult:
    """A finished local job's result, rebuilt from its row and its saved images."""
    upstream = record.upstream or {}
    missing = [MissingImage.model_validate(m) for m in upstream.get("missing") or []]
    lost = {m.index for m in missing}
    positions = (i for i in itertools.count() if i not in lost)  # as in the upstream answer
    images = []
    for image_id in record.image_ids:
        index = next(positions)
        stored = await services.store.get_image(image_id)
        if stored is not None:
            images.append(to_saved(await readable(services, stored), index))
    ok = record.status in ("succeeded", "partial") and images
    return ImageToolResult(
        status=("partial" if missing else "completed") if ok else "failed",
        model=str(upstream.get("model") or (record.request_args or {}).get("model") or ""),
        parameters=dict(upstream.get("parameters") or {}),
        images=images, missing=missing, usage=upstream.get("usage"),
        cost=CostEstimate.model_validate(upstream["cost"]) if upstream.get("cost") else None,
        job_id=record.job_id, job_status=record.status, message=record.message,
    )


async def fetch_local(
    services: Services, job_id: str, wait: bool, ticker: Ticker
) -> ImageToolResult:
    """fetch_job for a local id: wait on the live job, or follow the row of a job another
    server runs, or read the finished row."""
    runner = services.require_runner()
    budget = services.settings.wait_budget_seconds if wait else 0.0
    live = runner.find(job_id)
    if live is not None:
        live.promised = True
        try:
            return await runner.wait(live, ticker, budget, local_pending)
        except ServiceError:
            pass  # the row now holds the failure; report it as a failed job below
    record = await services.store.get_job(job_id)
    if record is None:
        raise ServiceError(
            f"No job {job_id!r} is recorded in this server's store. Local job ids come from "
            "generate_image or edit_image results of a server using the same store."
        )
    if record.status == "running" and live is None:
        return await wait_elsewhere(services, job_id, ticker, budget)
    return await result_from_record(services, record)


async def wait_elsewhere(
    services: Services, job_id: str, ticker: Ticker, budget: float
) -> ImageToolResult:
    """Wait for a running local job this process does not run, through its row.

    Its owner may be another live server (then wait, within the budget), or gone (its
    lease ran out: the job is marked interrupted, exactly as the periodic sweep would).
    """
    store = services.store
    record = await store.get_job(job_id)
    if record is not None and record.status == "running":
        if record.owner_id == store.owner.instance_id:  # ours, but no longer running here
            await store.update_job(job_id, status="interrupted",
                                   message=interrupted_message(job_id))
        else:
            await store.interrupt_if_expired(job_id, interrupted_message(job_id))
        record = await follow_row(services, job_id, ticker, budget,
                                  lambda r: r.status != "running")
    if record is None:
        raise ServiceError(f"No job {job_id!r} is recorded on this server.")
    if record.status == "running":
        return _pending(job_id, str((record.request_args or {}).get("model") or ""),
                        row_phase(record))
    return await result_from_record(services, record)
