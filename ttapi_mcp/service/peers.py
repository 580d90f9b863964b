"""This server as one peer of several on a store: it keeps its leases and sweeps for
jobs whose server is gone.

Every ``lease_renew_seconds`` (at most a third of ``lease_seconds``, so two renewals can
be missed before a lease runs out) one statement extends the lease of every open job this
process owns and one the collector claims of the upstream jobs it watches; then a sweep
(:func:`.recovery.recover_jobs`) takes over what other servers left behind. Each job's
phase is written to its row when it changes, so any server can show it. On a clean stop
the claims are given back at once, so another server need not wait for them to expire.
"""

from __future__ import annotations

import logging

import anyio
from anyio.abc import TaskGroup

from .common import Services
from .recovery import recover_jobs
from .runner import LiveJob, is_local

log = logging.getLogger("ttapi_mcp.service")


def renew_interval(services: Services) -> float:
    settings = services.settings
    return min(settings.lease_renew_seconds, settings.lease_seconds / 3)


def join_peers(services: Services, tg: TaskGroup) -> None:
    """Record every job's phase in its row from now on, and keep the leases in ``tg``."""
    store = services.store

    def note_phase(job: LiveJob) -> None:
        store.note_phase(job.job_id, job.phase)

    services.require_runner().on_phase = note_phase
    tg.start_soon(keep_leases, services, name="job leases")


async def keep_leases(services: Services) -> None:
    """Renew, sweep, repeat; until cancelled (the server stops)."""
    store, runner = services.store, services.require_runner()
    interval = renew_interval(services)
    try:
        while True:
            await anyio.sleep(interval)
            try:
                watched = [j for j in runner.live if not is_local(j)]
                await store.renew_leases(watched)
                await recover_jobs(services)
            except Exception:  # a failed round must not stop the next one
                log.exception("renewing job leases failed; retrying in %.1f s", interval)
    finally:
        with anyio.CancelScope(shield=True):
            try:
                await store.release_all()
            except Exception:
                log.exception("could not release this server's job claims")
