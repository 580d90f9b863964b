"""TTAPI's 2026 error shapes and statuses (§11.1, §11.2), client against the real emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from ttapi_mcp.api import (
    AccountBlockedError,
    AuthenticationError,
    FourOSubmitRequest,
    GenerationRequest,
    RetryPolicy,
    TTAPIClient,
)
from ttapi_mcp.emulator import Fault

pytestmark = pytest.mark.anyio
CANARY = "sk-canary-2026-errors-do-not-leak"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(emulator: Any) -> AsyncIterator[TTAPIClient]:
    async with TTAPIClient(emulator.base_url, CANARY, retry=RetryPolicy(base_delay=0.01)) as api:
        yield api


async def test_401_envelope_without_data_parses_on_the_v1_route(
    emulator: Any, client: TTAPIClient
) -> None:
    emulator.options.api_keys = ["another"]
    with pytest.raises(AuthenticationError) as info:
        await client.generate(GenerationRequest(prompt="p", model="dall-e-2"))
    text = str(info.value)
    assert not isinstance(info.value, AccountBlockedError)
    assert "Wrong TT-API-KEY or email is not activated" in text and "TTAPI_API_KEY" in text
    assert "nothing was billed" in text and CANARY not in text


@pytest.mark.parametrize("route", ["E1", "E4", "E5"])
async def test_403_account_blocked_is_not_retried_and_not_billed(
    emulator: Any, client: TTAPIClient, route: str
) -> None:
    job_id = await client.submit_4o(FourOSubmitRequest(prompt="draw")) if route == "E5" else ""
    emulator.clear_log()
    emulator.add_fault(Fault(route=route, kind="account_blocked", count=3))  # type: ignore[arg-type]
    with pytest.raises(AccountBlockedError) as info:
        if route == "E1":
            await client.generate(GenerationRequest(prompt="p", model="dall-e-2"))
        elif route == "E4":
            await client.submit_4o(FourOSubmitRequest(prompt="draw"))
        else:
            await client.fetch_4o(job_id)
    text = str(info.value)
    assert "The TTAPI account is blocked; contact TTAPI" in text
    assert "Account Block" in text and info.value.status == 403
    assert not info.value.may_have_been_billed
    assert len(emulator.api_requests(route)) == 1
    assert CANARY not in text


@pytest.mark.parametrize("key", ["job_id", "jobId"])
async def test_submit_reads_either_job_id_key(
    emulator: Any, client: TTAPIClient, key: str
) -> None:
    emulator.options.job_id_key = key
    emulator.options.job_seconds = 0
    job_id = await client.submit_4o(FourOSubmitRequest(prompt="draw a fox"))
    assert len(job_id) == 36
    assert (await client.fetch_4o(job_id)).status == "SUCCESS"


@pytest.mark.parametrize("status", ["PENDING_QUEUE", "QUEUED_FOR_A_RAINY_DAY"])
async def test_unknown_and_queue_statuses_are_not_terminal(
    emulator: Any, client: TTAPIClient, status: str
) -> None:
    emulator.options.job_seconds = 30
    job_id = await client.submit_4o(FourOSubmitRequest(prompt="draw"))
    emulator.add_fault(Fault(route="E5", job_status=status))
    job = await client.fetch_4o(job_id)
    assert job.status == status and not job.is_terminal
