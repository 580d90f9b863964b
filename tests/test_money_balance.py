"""The balance: a call the known balance cannot cover is refused before sending, a low
balance puts a warning on every result, an unknown one never blocks; and the ledger
agrees with what the emulator charged (contract §11.7: its balance falls by its prices).

The balance is read in the background, started by the first paid call, so no call waits
for it; the tests wait (bounded) for that read before the call that depends on it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import CANARY_KEY, make_server_settings, mcp_client

from ttapi_mcp.api import TTAPIClient
from ttapi_mcp.emulator import Emulator, Fault
from ttapi_mcp.store import ImageStore

pytestmark = pytest.mark.anyio
HIGH = {"prompt": "a costly fox", "model": "gpt-image-1", "quality": "high",
        "size": "1024x1024", "preview": "none"}
DALLE2 = {"model": "dall-e-2", "size": "256x256", "response_format": "b64_json",
          "preview": "none"}


def text_of(result: Any) -> str:
    return str(result.content[0].text)


async def ledger(settings: Any) -> list[dict[str, Any]]:
    async with ImageStore(settings.output_dir, settings.store_path) as store:
        return await store.ledger_rows()


@asynccontextmanager
async def client_and_services(settings: Any, mode: str = "auto") -> AsyncIterator[Any]:
    from mcp import Client

    from ttapi_mcp.server.app import build_server

    server = build_server(settings)
    async with Client(server, mode=mode) as client:  # type: ignore[arg-type]
        assert server.startup is not None
        yield client, await server.startup.services()


async def balance_read(services: Any) -> None:
    with anyio.fail_after(10):
        while services.balance.quota is None:
            await anyio.sleep(0.02)


async def test_a_call_the_balance_cannot_cover_is_refused_before_sending(
    emulator: Emulator, tmp_path: Path, client_mode: str
) -> None:
    emulator.options.starting_balance = 5
    settings = make_server_settings(emulator.base_url, tmp_path)
    async with client_and_services(settings, client_mode) as (client, services):
        cheap = await client.call_tool("generate_image", {"prompt": "cheap", **DALLE2})
        await balance_read(services)  # started by the first paid call
        result = await client.call_tool("generate_image", HIGH)
    assert result.is_error
    text = text_of(result)
    assert "nothing was billed" in text
    # Read while the first call ran: before (5) or after (3) the emulator charged it.
    assert re.search(r"the TTAPI balance is [35] quota \(\$0\.0[35]\) and this call needs "
                     r"about 16\.7 quota \(\$0\.17\)", text), text
    assert "Top up at TTAPI" in text
    assert not cheap.is_error, cheap.content
    assert len(emulator.api_requests("E1")) == 1
    assert len(emulator.api_requests("M1")) == 1
    assert [r["model"] for r in await ledger(settings)] == ["dall-e-2"]


async def test_below_warn_balance_below_every_result_carries_a_warning(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.options.starting_balance = 50
    emulator.options.job_seconds = 0.1
    settings = make_server_settings(emulator.base_url, tmp_path, warn_balance_below=60)
    async with client_and_services(settings) as (client, services):
        await client.call_tool("generate_image", {"prompt": "first", **DALLE2})
        await balance_read(services)
        image = await client.call_tool("generate_image", {"prompt": "warned", **DALLE2})
        job = await client.call_tool("gpt4o_image", {"prompt": "draw a warning"})
    for result in (image, job):
        assert not result.is_error, result.content
        warning = result.structured_content["warning"]
        assert warning.startswith("the TTAPI balance is low: about 4") and "top up" in warning
        assert "warn_balance_below (60)" in warning
    assert "Warning: the TTAPI balance is low" in text_of(image)


async def test_a_healthy_balance_adds_no_warning_and_is_read_once(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path)
    async with mcp_client(settings) as client:
        for i in range(3):
            result = await client.call_tool("generate_image", {"prompt": f"ok {i}", **DALLE2})
            assert not result.is_error and result.structured_content["warning"] is None
    assert len(emulator.api_requests("M1")) == 1


async def test_an_unknown_balance_never_blocks_a_call(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.add_fault(Fault(route="M1", status=500, count=20, message="account down"))
    emulator.options.starting_balance = 0  # would refuse, if it could be read
    emulator.options.charge = False  # ... and the emulator itself lets the call through
    settings = make_server_settings(emulator.base_url, tmp_path, retry_max_attempts=1)
    async with mcp_client(settings) as client:
        result = await client.call_tool("generate_image", {"prompt": "blind", **DALLE2})
    assert not result.is_error, result.content
    assert result.structured_content["warning"] is None
    assert len(emulator.api_requests("E1")) == 1


async def test_balance_checks_can_be_switched_off(emulator: Emulator, tmp_path: Path) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path, balance_max_age_seconds=0)
    async with mcp_client(settings) as client:
        result = await client.call_tool("generate_image", {"prompt": "unchecked", **DALLE2})
    assert not result.is_error
    assert emulator.api_requests("M1") == []


async def test_the_ledger_matches_what_the_emulator_charged(
    emulator: Emulator, tmp_path: Path
) -> None:
    """With the emulator's prices configured (as a user who knows theirs would), the
    ledger's spend equals the fall of the emulator's balance, failures included."""
    emulator.options.starting_balance = 1000
    emulator.options.job_seconds = 0.1
    prices = {"dall-e-2": {"standard": {"256x256": 2}},
              "gpt-image-1": {"low": {"1024x1024": 1}, "medium": {"1024x1024": 4}},
              "gpt-4o-image": {"job": 2}}
    settings = make_server_settings(emulator.base_url, tmp_path, prices=prices,
                                    retry_max_attempts=1)
    async with mcp_client(settings) as client:
        calls = [
            await client.call_tool("generate_image", {"prompt": "two", "n": 2, **DALLE2}),
            await client.call_tool("generate_image", {
                "prompt": "low", "model": "gpt-image-1", "quality": "low", "size": "1024x1024",
                "preview": "none"}),
            await client.call_tool("generate_image", {
                "prompt": "medium", "model": "gpt-image-1", "quality": "medium",
                "size": "1024x1024", "preview": "none"}),
            await client.call_tool("gpt4o_image", {"prompt": "draw a paid job"}),
        ]
        emulator.options.job_outcome = "failed"
        failed = await client.call_tool("gpt4o_image", {"prompt": "draw a free failure"})
        emulator.add_fault(Fault(route="E1", status=400, message="refused"))
        refused = await client.call_tool("generate_image", {"prompt": "400", **DALLE2})
    assert all(not c.is_error for c in calls), [text_of(c) for c in calls]
    assert failed.structured_content["status"] == "failed" and refused.is_error
    async with TTAPIClient(str(emulator.base_url), CANARY_KEY) as api:
        balance = float((await api.account_info()).balance)
    rows = await ledger(settings)
    spent = sum(r["held_quota"] for r in rows)
    assert 1000 - balance == pytest.approx(4 + 1 + 4 + 2)
    assert spent == pytest.approx(1000 - balance)
    assert [r["state"] for r in rows] == ["spent"] * 4 + ["released"] * 2
