"""The warm-up done while the model thinks: the first call then finds it all ready."""

from __future__ import annotations

import ssl
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest
from conftest import CANARY_KEY, mcp_client

from ttapi_mcp.api import TTAPIClient
from ttapi_mcp.emulator import Emulator
from ttapi_mcp.server.warmup import warm_up

pytestmark = pytest.mark.anyio


async def test_warm_up_prepares_tls_once_and_the_pool_uses_it(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with TTAPIClient(emulator.base_url, CANARY_KEY) as api:
        warm_up(api)
        prepared = api._tls
        assert isinstance(prepared, ssl.SSLContext)
        assert "PIL.PngImagePlugin" in sys.modules and "ttapi_mcp.previews" in sys.modules

        def refuse(*_: Any, **__: Any) -> ssl.SSLContext:
            raise AssertionError("the trust store was loaded a second time")

        monkeypatch.setattr(httpx2, "create_ssl_context", refuse)
        warm_up(api)  # again: nothing reloaded
        info = await api.account_info()  # the pool is built now, from the prepared context
        assert info.balance is not None
        assert api._tls is prepared


async def test_first_call_after_start_works_with_the_warm_up(
    server_settings: Any, emulator: Emulator, tmp_path: Path
) -> None:
    """The warm-up runs beside the service start; a call made at once still succeeds
    (both may build the pool; whichever is first, the call is answered)."""
    async with mcp_client(server_settings) as client:
        result = await client.call_tool("generate_image", {
            "prompt": "a harbour at dawn", "model": "dall-e-2", "size": "256x256"})
    assert not result.is_error, result.content
    assert Path(result.structured_content["images"][0]["path"]).is_file()
    assert len(emulator.api_requests("E1")) == 1


async def test_warm_up_starts_the_store_threads_and_builds_the_pool(emulator: Emulator) -> None:
    import threading

    from ttapi_mcp.server.warmup import warm_up_services

    async with TTAPIClient(emulator.base_url, CANARY_KEY) as api:
        await warm_up_services(api)
        assert api._client is not None  # the pool, built on the event loop
        pool = api._client
        info = await api.account_info()
        assert info.balance is not None and api._client is pool
    names = [t.name for t in threading.enumerate()]
    assert sum(name.startswith("ttapi-store") for name in names) == 2
