"""Duplicate-call protection for gpt4o_image jobs (both job routes).

An identical call (tool + effective arguments, :func:`.dedupe.call_key`) made while the
first one's job is unfinished anywhere on the store, or succeeded within
``dedupe_window_seconds``, attaches to that job instead of paying for a second one.

The job id only exists once TTAPI answers the submit, so the submitter first claims the
call's key (:meth:`ImageStore.claim_submit`, atomic across processes). An identical
caller that finds the claim waits, bounded by the wait budget, until the job row with
that key appears. When the claimer's submit fails its claim is dropped and a waiting
caller submits itself (the failure may have been transient, and its caller asked for an
image); the claimer renews its claim while it submits, and one that crashed leaves a
claim that expires after its lease.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from .common import ServiceError, Services

log = logging.getLogger("ttapi_mcp.service")

CLAIM_POLL_SECONDS = 0.1
"""How often a caller waiting on an identical submit looks at the store again."""
NO_WINDOW = 1e18
"""``since`` when no dedupe window is set: no finished job is reused."""


def claim_lease(services: Services) -> float:
    """How long a submit claim lasts: a submit's own time-out, plus the job lease."""
    settings = services.settings
    return settings.connect_timeout + settings.job_request_timeout + settings.lease_seconds


async def attach_or_claim(services: Services, key: str) -> tuple[str | None, str | None]:
    """``(job_id, None)``: attach to that job; ``(None, token)``: submit, then release.

    Waits while an identical submit is under way, at most the wait budget (at least a
    few seconds, so wait=false callers also see the job id)."""
    settings = services.settings
    window = settings.dedupe_window_seconds
    bound = max(settings.wait_budget_seconds, 5.0)
    deadline = anyio.current_time() + bound
    while True:
        since = time.time() - window if window > 0 else NO_WINDOW
        outcome, value = await services.store.claim_submit(key, since, claim_lease(services))
        if outcome == "job":
            return value, None
        if outcome == "claimed":
            return None, value
        if anyio.current_time() + CLAIM_POLL_SECONDS > deadline:
            raise ServiceError(
                f"An identical gpt4o_image call is being submitted (in this or another server "
                f"on this store) and named no job within {bound:.0f} s; nothing was submitted "
                "for this call. Call again to attach to it, or pass dedupe=false to force a "
                "new paid job."
            )
        await anyio.sleep(CLAIM_POLL_SECONDS)


@asynccontextmanager
async def holding(services: Services, token: str | None) -> AsyncIterator[None]:
    """Keep the claim ``token`` alive (renewed every ``lease_renew_seconds``) while the
    body submits: a submit queued behind busy upstream slots outlasts one lease, and an
    identical call must keep waiting for it rather than pay again."""
    if token is None:
        yield
        return
    lease = claim_lease(services)

    async def renew() -> None:
        while True:
            await anyio.sleep(services.settings.lease_renew_seconds)
            try:
                await services.store.renew_submit(token, lease)
            except Exception as exc:  # the claim then ends with its lease, as on a crash
                log.warning("could not renew the submit claim: %s", exc)

    failure: Exception | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(renew)
        try:
            yield
        except Exception as exc:  # re-raised as itself, not inside an exception group
            failure = exc
        finally:
            tg.cancel_scope.cancel()
    if failure is not None:
        raise failure


async def release(services: Services, token: str | None) -> None:
    """Drop a submit claim, shielded (its end must be recorded even when cancelled)."""
    if token is None:
        return
    with anyio.CancelScope(shield=True):
        await services.store.release_submit(token)


def attached_note(job_id: str) -> str:
    return (
        f"An identical gpt4o_image call already has job {job_id}; attached to it instead of "
        "paying again (pass dedupe=false to force a new paid draw)."
    )


def key_args(params: dict[str, Any]) -> dict[str, Any]:
    """The effective arguments of a gpt4o_image call that name it."""
    names = ("prompt", "refer_images", "model", "aspect_ratio", "size", "hook_url")
    return {k: params.get(k) for k in names}
