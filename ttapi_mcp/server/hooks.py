"""The HTTP route TTAPI calls when a gpt4o_image job ends (either job route):
``POST /hooks/4o/{hook_id}?token=…``.

Only served over streamable HTTP (the route lives on the HTTP app) and only ever given
to TTAPI when ``public_base_url`` is set. The route does not trust the body: a right,
unused token only wakes the job's watcher, which asks TTAPI for the job on its route
(E5, or A2 on the async GPT route) at once, then downloads, saves and records the image
and announces that ``ttapi://jobs/{id}`` changed. So a forged or replayed body can change
nothing, and polling remains the fallback when no hook ever arrives.

Answers: 200 accepted; 403 wrong, unknown or already used token (nothing changes);
413 body over 64 KiB; 503 while the server is not ready.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ttapi_mcp.service.hooks import HOOK_PATH

if TYPE_CHECKING:
    from ttapi_mcp.service import Services

    from .app import TTAPIServer

log = logging.getLogger("ttapi_mcp.server")

MAX_HOOK_BODY = 64 * 1024
READY_WAIT_SECONDS = 10.0
"""How long a hook waits for the services to start before answering 503."""
HOOK_PREFIX = HOOK_PATH.split("{", 1)[0]


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it exceeds ``limit`` bytes (never buffered beyond)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            return None
    return bytes(body)


async def _ready_services(server: TTAPIServer) -> Services | None:
    """The services, starting them if no request has yet; None if they do not come up."""
    if server.startup is None:
        return None
    with anyio.move_on_after(READY_WAIT_SECONDS):
        try:
            return await server.startup.services()
        except RuntimeError:  # start-up failed, or the server is stopping
            return None
    return None


def register_hooks(server: TTAPIServer) -> None:
    """Add the hook route to the server's HTTP app."""

    @server.custom_route(HOOK_PATH, methods=["POST"], include_in_schema=False)
    async def hook(request: Request) -> Response:
        from ttapi_mcp.service.hooks import accept_hook
        from ttapi_mcp.service.jobroutes import route_of_kind
        from ttapi_mcp.service.jobs import watch_4o

        services = await _ready_services(server)
        if services is None or services.runner is None:
            return PlainTextResponse("not ready", status_code=503)
        body = await _read_limited(request, MAX_HOOK_BODY)
        if body is None:
            return PlainTextResponse("body too large", status_code=413)
        hook_id = str(request.path_params.get("hook_id", ""))
        entry = await accept_hook(services, hook_id, request.query_params.get("token", ""))
        if entry is None:
            log.warning("hook %s refused: wrong, unknown or used token", hook_id[:40])
            return PlainTextResponse("forbidden", status_code=403)
        if entry.job_id is None:  # the hook came before TTAPI's submit answer
            try:
                claimed = json.loads(body).get("jobId")
            except (ValueError, AttributeError):
                claimed = None
            entry.job_id = claimed if isinstance(claimed, str) and claimed else None
        if entry.job_id is None:
            return PlainTextResponse("no job id", status_code=400)
        record = await services.store.get_job(entry.job_id)
        for _ in range(20):  # the hook beat the submit's own record: wait for it (<= 2 s)
            if record is not None:
                break
            await anyio.sleep(0.1)
            record = await services.store.get_job(entry.job_id)
        args = (record.request_args if record else None) or {}
        hidden = ("request_id", "hook_id", "hook_sha256", "hook_used")
        params = {k: v for k, v in args.items() if k not in hidden}
        if record is None:  # not recorded here: its route is unknown; fetch_job collects it
            log.warning("hook for job %s came before its record; not watched", entry.job_id)
            return JSONResponse({"ok": True})
        watch_4o(services, entry.job_id, params, 0.0, route_of_kind(record.kind)).poke()
        log.info("hook for job %s accepted", entry.job_id)
        return JSONResponse({"ok": True})
