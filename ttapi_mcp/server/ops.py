"""Operations over HTTP: health and readiness probes, and a request id for every request.

``GET /healthz`` answers 200 while the process serves; ``GET /readyz`` answers 200 once
the services run, the database answers a query and the image folder takes a file, and
503 otherwise. Both stay outside sign-in (a balancer has no token) and say nothing a
stranger could use: a status word per check, never a path, an address or an error text
(those go to the log).

Each HTTP request gets an id (the caller's ``X-Request-Id`` when it is a plain token of
up to 64 characters, else a fresh one), echoed in the response and put on every log
line written while the request, and the jobs it starts, run (see ``ttapi_mcp.logs``).
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
from collections.abc import Awaitable
from typing import TYPE_CHECKING

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ttapi_mcp.logs import request_id_var

if TYPE_CHECKING:
    from ttapi_mcp.storage import ImageStorage

    from .app import TTAPIServer

log = logging.getLogger("ttapi_mcp.server")

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
PROBE_PATHS = frozenset({HEALTH_PATH, READY_PATH})
START_WAIT_SECONDS = 5.0
"""How long /readyz waits for the services to start before answering 'starting'."""
CHECK_SECONDS = 5.0
"""How long one readiness check may take before it counts as failed."""
SHARED_STORAGE_SECONDS = 15.0
"""How long a shared-storage probe's outcome is reused: a probe is three paid requests
to the bucket, and balancers ask every few seconds."""
NO_CACHE = {"Cache-Control": "no-store"}
_GOOD_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


async def _check(name: str, work: Awaitable[object]) -> str:
    try:
        with anyio.fail_after(CHECK_SECONDS):
            await work
    except Exception as exc:  # any failure means not ready; the detail is for the log
        log.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
        return "failed"
    return "ok"


def register_probes(server: TTAPIServer) -> None:
    """Add /healthz and /readyz to the server's HTTP app."""
    last: dict[str, float | str] = {"at": float("-inf"), "state": "failed"}
    probing = anyio.Lock()

    def fresh() -> bool:
        return anyio.current_time() - float(last["at"]) < SHARED_STORAGE_SECONDS

    async def shared_probe(storage: ImageStorage) -> str:
        # One probe at a time; while it runs the others answer with the last outcome
        # (or, before the first one, wait for it).
        if fresh() or (probing.locked() and last["at"] != float("-inf")):
            return str(last["state"])
        async with probing:
            if not fresh():
                last["state"] = await _check("shared storage", storage.check())
                last["at"] = anyio.current_time()
        return str(last["state"])


    @server.custom_route(HEALTH_PATH, methods=["GET"], include_in_schema=False)
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"}, headers=NO_CACHE)

    @server.custom_route(READY_PATH, methods=["GET"], include_in_schema=False)
    async def readyz(request: Request) -> Response:
        services = None
        if server.startup is not None:
            # RuntimeError: start-up failed, or the server is stopping.
            with anyio.move_on_after(START_WAIT_SECONDS), contextlib.suppress(RuntimeError):
                services = await server.startup.services()
        if services is None:
            return JSONResponse({"status": "starting"}, status_code=503, headers=NO_CACHE)
        from ttapi_mcp.storage import LocalFolder

        store = services.store
        checks = {
            "database": await _check("database", store.get_image("readyz-probe")),
            "storage": await _check("storage", LocalFolder(store.output_dir).check()),
        }
        if store.storage is not None:
            checks["shared storage"] = await shared_probe(store.storage)
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ready" if ready else "unavailable", "checks": checks},
                            status_code=200 if ready else 503, headers=NO_CACHE)


class RequestIdMiddleware:
    """Give each HTTP request an id: in the log lines it causes and in ``X-Request-Id``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _GOOD_ID.fullmatch(given) else secrets.token_hex(8)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []),
                           (b"x-request-id", request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        token = request_id_var.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
