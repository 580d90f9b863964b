"""Jobs whose server is gone: found by their expired leases, at start and periodically.

Several servers may share one store, so a job is only recovered when its owner's lease
(and, for an upstream job, its collector's) has run out: a job whose owner is alive is
never touched. What recovery does depends on where the work lives:

- Upstream jobs (TTAPI's own, e.g. GPT-4o) live at TTAPI, so they are simply watched again
  (in the background), by whichever server takes their collector claim: their image is
  saved on SUCCESS, exactly as if their server had never stopped. Their hooks are
  re-armed, since only the token's digest was needed to check them. Each route registers
  how to resume its kind (:mod:`.upstream`).
- Local generate/edit jobs ran *in* their server: their HTTP request died with it. TTAPI
  may still have completed and billed it, but its answer is gone, so they are marked
  ``interrupted`` with a message that says so, rather than left "running".
"""

from __future__ import annotations

import logging

from ttapi_mcp.store import JobRecord

from .common import Services
from .hooks import restore_hook
from .jobroutes import route_of_kind
from .jobs import watch_4o
from .runner import interrupted_message, is_local
from .upstream import register_upstream_kind, resume_for

log = logging.getLogger("ttapi_mcp.service")

SCANNED_JOBS = 1000


def resume_upstream(services: Services, record: JobRecord) -> None:
    """Watch an unfinished upstream job again (on its own route), with its hook re-armed."""
    args = dict(record.request_args or {})
    hook_id, digest = args.pop("hook_id", None), args.pop("hook_sha256", None)
    if isinstance(hook_id, str) and isinstance(digest, str):
        restore_hook(services, hook_id, digest, record.job_id)
    params = {k: v for k, v in args.items() if k not in ("request_id", "hook_used")}
    watch_4o(services, record.job_id, params, 0.0, route_of_kind(record.kind))


register_upstream_kind("4o", resume_upstream)
register_upstream_kind("gpt", resume_upstream)


async def recover_jobs(services: Services) -> tuple[int, int]:
    """Resume upstream jobs and close cut-off local ones whose server is gone;
    returns (resumed, interrupted)."""
    resumed = interrupted = 0
    runner = services.require_runner()
    for record in await services.store.expired_jobs(SCANNED_JOBS):
        if is_local(record.job_id):
            if record.status == "running" and await services.store.interrupt_if_expired(
                record.job_id, interrupted_message(record.job_id)
            ):
                interrupted += 1
            continue
        resume = resume_for(record.kind)
        if resume is None or services.client is None or runner.find(record.job_id):
            continue
        resume(services, record)
        resumed += 1
    if resumed or interrupted:
        log.info("recovery: resumed %d upstream job(s), marked %d local job(s) interrupted",
                 resumed, interrupted)
    return resumed, interrupted
