"""The MCP server: built in one place, with a lifespan that owns the client and the store.

``build_server`` declares the tools, resources and prompts; ``run_server`` picks the
transport. Over stdio, stdout carries only the protocol (logs go to stderr).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

import anyio
from mcp.server.apps import client_supports_apps
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourceUpdated
from mcp_types import (
    CallToolResult,
    InputRequiredResult,
    ListResourcesResult,
    ListToolsResult,
    PaginatedRequestParams,
)
from pydantic import AnyUrl

from ttapi_mcp import __version__
from ttapi_mcp.config import ConfigError, Settings

from .account import ACCOUNT_URI, account_json, register_account
from .apps.tools import APP_ONLY_TOOLS, build_apps
from .hooks import register_hooks
from .partials import PARTIAL_PREFIX, read_partial, register_partials
from .prompts import register_prompts
from .resources import (
    IMAGE_PREFIX,
    JOB_PREFIX,
    JOBS_URI,
    USAGE_URI,
    jobs_json,
    list_image_page,
    read_image,
    register_resources,
    usage_json,
)
from .schemas import compact_tool_schemas
from .startup import Startup, services_of
from .strictargs import check_arguments, forbid_extra_in_schema
from .tools import register_tools

if TYPE_CHECKING:
    # The client, the store and the actions load when the lifespan starts, not at import:
    # a client lists the tools first, and that only needs their declarations.
    from ttapi_mcp.api import TTAPIClient

log = logging.getLogger("ttapi_mcp.server")

INSTRUCTIONS = (
    "Create and edit images with OpenAI image models through TTAPI. generate_image makes new "
    "images, edit_image changes or combines existing ones (paths, ttapi://images/{id} URIs of "
    "earlier results, data URIs or URLs), gpt4o_image runs an image job (GPT-4o image, or "
    "gpt-image-* on TTAPI's async route) and fetch_job collects a job that was still running. "
    "Every image is saved to disk at once; results give the absolute path and a "
    "ttapi://images/{id} resource. Read ttapi://models for each model's sizes, qualities and "
    "options before choosing parameters."
)


def make_client(settings: Settings) -> TTAPIClient | None:
    """A client only when a key is configured: without one, calls explain how to set it."""
    from ttapi_mcp.api import RetryPolicy, Timeouts, TTAPIClient

    key = settings.api_key_value()
    if not key:
        return None
    return TTAPIClient(
        settings.base_url,
        key,
        timeouts=Timeouts(
            connect=settings.connect_timeout,
            dalle=settings.request_timeout,
            gpt=settings.gpt_request_timeout,
            job=settings.job_request_timeout,
            download=settings.download_timeout,
        ),
        retry=RetryPolicy(
            max_attempts=settings.retry_max_attempts,
            base_delay=settings.retry_base_delay,
            max_delay=settings.retry_max_delay,
            max_total_seconds=settings.retry_max_total_seconds,
        ),
    )


def _load_services() -> None:
    """Import what the services need (the client, the store, every action)."""
    import ttapi_mcp.api
    import ttapi_mcp.service.images
    import ttapi_mcp.service.jobs
    import ttapi_mcp.service.recovery
    import ttapi_mcp.store  # noqa: F401


class TTAPIServer(MCPServer[Startup]):
    """MCPServer with paginated image listing and per-image MIME types on read."""

    def __init__(self, settings: Settings) -> None:
        self.ttapi_settings = settings
        self.startup: Startup | None = None
        """Set by the lifespan: routes outside MCP requests wait on it (see hooks)."""
        self.hook_base_url: str | None = None
        """Set by the HTTP app when ``public_base_url`` is configured (hooks need HTTP)."""
        self.bus = InMemorySubscriptionBus()

        async def job_changed(job_id: str) -> None:
            await self.bus.publish(ResourceUpdated(uri=f"{JOB_PREFIX}{job_id}"))

        @asynccontextmanager
        async def lifespan(_: MCPServer[Startup]) -> AsyncIterator[Startup]:
            """Yields at once; the services start in a background task (see .startup)."""
            startup = self.startup = Startup()
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._run_services, startup, job_changed)
                    try:
                        yield startup
                    finally:
                        tg.cancel_scope.cancel()
            finally:
                self.startup = None

        auth_options: dict[str, Any] = {}
        if settings.oauth_issuer:  # sign-in code loads only when it is configured
            from .auth import server_auth_options

            auth_options = server_auth_options(settings)
        super().__init__(
            name="ttapi-mcp",
            title="TTAPI image models",
            instructions=INSTRUCTIONS,
            version=__version__,
            lifespan=lifespan,
            log_level=settings.log_level,
            subscriptions=self.bus,
            **auth_options,
            extensions=[build_apps()],
        )

    async def _run_services(
        self, startup: Startup, job_changed: Callable[[str], Awaitable[None]]
    ) -> None:
        """Own the store, the client and the task group background jobs run in, until
        cancelled at shutdown.

        The task group is the server's, not a request's, so a job outlives the call that
        started it; it is cancelled (and its jobs recorded) on shutdown. Recovery of the
        previous process's jobs runs before any request gets the services.
        """
        settings = self.ttapi_settings
        try:
            await startup.wait_until_needed()
            # Imported in a worker thread: the event loop keeps answering meanwhile
            # (importing holds the GIL only in short slices).
            await anyio.to_thread.run_sync(_load_services)
            from ttapi_mcp.server.owner import request_user
            from ttapi_mcp.service import Services
            from ttapi_mcp.service.peers import join_peers
            from ttapi_mcp.service.recovery import recover_jobs
            from ttapi_mcp.service.runner import JobRunner
            from ttapi_mcp.storage import shared_storage
            from ttapi_mcp.store import ImageStore

            from .warmup import warm_up_services

            store = ImageStore(settings.output_dir, settings.store_path,
                               lease_seconds=settings.lease_seconds,
                               database_url=settings.database_url_value(),
                               storage=shared_storage(settings))
            store.current_user = request_user(settings)  # each user sees only their rows
            async with store:
                removed = await store.cleanup_temp_files()
                if removed:
                    log.info("removed %d leftover temporary file(s)", len(removed))
                client = make_client(settings)
                if client is None:
                    log.warning("no TTAPI API key configured: tool calls explain how to set it")
                try:
                    async with anyio.create_task_group() as tg:
                        runner = JobRunner(tg, settings.max_concurrent_requests)
                        runner.on_changed = job_changed
                        services = Services(settings=settings, store=store, client=client,
                                            runner=runner, hook_base_url=self.hook_base_url)
                        if client is not None:
                            await recover_jobs(services)
                        join_peers(services, tg)  # leases, phases, the periodic sweep
                        startup.set(services)
                        tg.start_soon(warm_up_services, client)
                        try:
                            await anyio.sleep_forever()
                        finally:
                            startup.set(None)  # stopping: refuse new work at once
                            tg.cancel_scope.cancel()
                finally:
                    if client is not None:
                        await client.aclose()
        finally:
            startup.set(None)

    async def _handle_list_tools(
        self, ctx: ServerRequestContext[Startup], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        """The app's own tools only for clients that render Apps (see apps/tools.py)."""
        tools = await self.list_tools()
        if not client_supports_apps(ctx):
            tools = [t for t in tools if t.name not in APP_ONLY_TOOLS]
        return ListToolsResult(tools=tools)

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Startup, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        """Refuse unknown arguments (the SDK would drop them) before the tool runs."""
        tool = self._tool_manager.get_tool(name)
        if tool is not None:
            check_arguments(tool, arguments)
        return await super().call_tool(name, arguments, context)

    async def _handle_list_resources(
        self, ctx: ServerRequestContext[Startup], params: PaginatedRequestParams | None
    ) -> ListResourcesResult:
        """Static resources on the first page, then saved images newest first, paginated."""
        cursor = params.cursor if params is not None else None
        resources = [] if cursor else await self.list_resources()
        if resources and not client_supports_apps(ctx):  # the page is for Apps hosts only
            resources = [r for r in resources if not str(r.uri).startswith("ui://")]
        services = await services_of(ctx.lifespan_context)
        images, next_cursor = await list_image_page(services, cursor)
        return ListResourcesResult(resources=[*resources, *images], next_cursor=next_cursor)

    async def read_resource(
        self, uri: AnyUrl | str, context: Context[Any, Any] | None = None
    ) -> Iterable[ReadResourceContents] | InputRequiredResult:
        """Images are read directly so each carries its own MIME type; the job list too,
        because it needs the lifespan context."""
        text = str(uri)
        if text.startswith(IMAGE_PREFIX) and context is not None:
            image_id = text.removeprefix(IMAGE_PREFIX)
            services = await services_of(context.request_context.lifespan_context)
            return [await read_image(services, image_id)]
        if text.startswith(PARTIAL_PREFIX) and context is not None:
            services = await services_of(context.request_context.lifespan_context)
            return [await read_partial(services, text.removeprefix(PARTIAL_PREFIX))]
        if text == ACCOUNT_URI and context is not None:
            doc = await account_json(await services_of(context.request_context.lifespan_context))
            return [ReadResourceContents(content=doc, mime_type="application/json")]
        if text == JOBS_URI and context is not None:
            doc = await jobs_json(await services_of(context.request_context.lifespan_context))
            return [ReadResourceContents(content=doc, mime_type="application/json")]
        if text == USAGE_URI and context is not None:
            doc = await usage_json(await services_of(context.request_context.lifespan_context))
            return [ReadResourceContents(content=doc, mime_type="application/json")]
        return await super().read_resource(uri, context)


def build_server(settings: Settings) -> TTAPIServer:
    """The complete server for ``settings`` (no I/O until a transport starts it)."""
    server = TTAPIServer(settings)
    register_tools(server)
    compact_tool_schemas(server._tool_manager.list_tools())
    forbid_extra_in_schema(server._tool_manager.list_tools())
    register_resources(server)
    register_account(server)
    register_partials(server)
    register_prompts(server)
    register_hooks(server)
    return server


def run_server(settings: Settings, transport: Literal["stdio", "http"] = "stdio") -> int:
    """Serve until stopped; returns the process exit code (2: refused to start)."""
    from ttapi_mcp.logs import configure_logging

    configure_logging(settings.log_level, settings.secret_values(), settings.log_format)
    problem = settings.storage_problem()
    if problem:
        print(f"Configuration error: {problem}", file=sys.stderr)
        return 2
    try:
        server = build_server(settings)
    except ConfigError as exc:  # e.g. OAuth sign-in without this server's public URL
        print(exc, file=sys.stderr)
        return 2
    if transport == "http":
        from .http import serve_http

        return serve_http(settings, server)
    server.run("stdio")
    return 0
