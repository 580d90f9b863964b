"""The lifespan's context: the services, which finish starting after the server answers.

Why: a client spawns the server and first asks for its tools. Loading the HTTP client,
the store and the actions, opening SQLite, sweeping temp files and recovering jobs
take tens of milliseconds that listing tools does not need, so the lifespan yields a
:class:`Startup` at once and does that work in a background task. Every request that
needs the services awaits them; the declarations (tools, prompts, templates) do not.

The background work starts when the first request needs it, or after a short grace
period, whichever comes first: started at once, its imports competed for the GIL with
the answers to initialize and tools/list (about 4% of a cold start here).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from ttapi_mcp.service import Services

GRACE_SECONDS = 0.5
"""How long the services wait, unasked, before they start anyway."""


class Startup:
    """Services that become available once the background start-up has run."""

    def __init__(self) -> None:
        self._ready = anyio.Event()
        self._wanted = anyio.Event()
        self._services: Services | None = None

    async def wait_until_needed(self, grace: float = GRACE_SECONDS) -> None:
        """Return once a request waits for the services, or after ``grace`` seconds."""
        with anyio.move_on_after(grace):
            await self._wanted.wait()

    def set(self, services: Services | None) -> None:
        """Publish the services (None: start-up failed or the server stops)."""
        self._services = services
        self._ready.set()

    async def services(self) -> Services:
        self._wanted.set()
        await self._ready.wait()
        if self._services is None:
            raise RuntimeError("the server's services are not running (stopped or failed)")
        return self._services


async def services_of(lifespan_context: Any) -> Services:
    """The services behind a request's lifespan context, waiting for start-up to finish."""
    assert isinstance(lifespan_context, Startup)
    return await lifespan_context.services()
