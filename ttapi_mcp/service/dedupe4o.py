"""Duplicate-call protection for gpt4o_image jobs (both job routes).

An identical call (tool + effective arguments, :func:`.dedupe.call_key`) made while the
first one's job is unfinished anywhere on the store, or succeeded within
``dedupe_window_seconds``, attaches to that job instead of paying for a second one.

The job id only exists once TTAPI answers the submit, so the submitter first claims the
call's key (:meth:`ImageStore.claim_submit`, atomic across processes). An identical
caller that finds the claim waits, bounded by the wait budget, until the job row with
that key appears. When the claimer's submit fails its claim is dropped and a waiting
caller submits itself (the failure may have been transient, and its caller asked for an
image); a claimer that crashed leaves a claim that expires after its lease.
"""

from __future__ import annotations

import time
from typing import Any

import anyio

from .common import ServiceError, Services

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
