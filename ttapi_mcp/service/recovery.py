"""What a starting server does about jobs the previous process left unfinished.

- TTAPI 4o jobs live upstream, so they are simply watched again (in the background):
  their image is saved on SUCCESS, exactly as if the server had never stopped. Their
  hooks are re-armed, since only the token's digest was needed to check them.
- Local generate/edit jobs ran *in* the previous process: their HTTP request died with
  it. TTAPI may still have completed and billed it, but its answer is gone, so they
  are marked ``interrupted`` with a message that says so, rather than left "running".
"""

from __future__ import annotations

import logging

from .common import Services
from .hooks import restore_hook
from .jobroutes import route_of_kind
from .jobs import watch_4o
from .runner import interrupted_message, is_local

log = logging.getLogger("ttapi_mcp.service")

UPSTREAM_TERMINAL = frozenset({"SUCCESS", "FAILED"})
SCANNED_JOBS = 1000


async def recover_jobs(services: Services) -> tuple[int, int]:
    """Resume unfinished 4o jobs and close cut-off local ones; returns (resumed, interrupted)."""
    resumed = interrupted = 0
    for record in await services.store.list_jobs(SCANNED_JOBS):
        if is_local(record.job_id):
            if record.status == "running":
                await services.store.update_job(
                    record.job_id, status="interrupted", message=interrupted_message(record.job_id)
                )
                interrupted += 1
            continue
        route = route_of_kind(record.kind)
        if route is None or record.status in UPSTREAM_TERMINAL and (
            record.image_ids or record.status == "FAILED"
        ):
            continue
        args = dict(record.request_args or {})
        hook_id, digest = args.pop("hook_id", None), args.pop("hook_sha256", None)
        if isinstance(hook_id, str) and isinstance(digest, str):
            restore_hook(services, hook_id, digest, record.job_id)
        params = {k: v for k, v in args.items() if k != "request_id"}
        watch_4o(services, record.job_id, params, 0.0, route)
        resumed += 1
    if resumed or interrupted:
        log.info("restart: resumed %d 4o job(s), marked %d local job(s) interrupted",
                 resumed, interrupted)
    return resumed, interrupted
