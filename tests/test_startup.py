"""The services start when a request first needs them, or after a grace period."""

from __future__ import annotations

import time

import anyio
import pytest

from ttapi_mcp.server.startup import Startup


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_unasked_services_start_after_the_grace_period() -> None:
    startup = Startup()
    started = time.monotonic()
    with anyio.fail_after(5):
        await startup.wait_until_needed(grace=0.2)
    assert time.monotonic() - started >= 0.2


@pytest.mark.anyio
async def test_a_request_starts_them_at_once_and_gets_them() -> None:
    startup = Startup()
    sentinel = object()
    got: list[object] = []

    async def request() -> None:
        got.append(await startup.services())

    async with anyio.create_task_group() as tg:
        tg.start_soon(request)
        with anyio.fail_after(5):  # not the 60 s grace: the request asked for them
            await startup.wait_until_needed(grace=60)
        startup.set(sentinel)  # type: ignore[arg-type]
    assert got == [sentinel]


@pytest.mark.anyio
async def test_a_failed_start_is_an_error_for_the_request() -> None:
    startup = Startup()
    startup.set(None)
    with pytest.raises(RuntimeError, match="not running"):
        await startup.services()
