"""The account balance (§11.7, §11.8): the client, the emulator's falling balance and 402,
the ttapi://account resource and doctor's line; the e-mail never shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import CANARY_KEY, mcp_client

from ttapi_mcp.api import (
    AccountInfo,
    FourOSubmitRequest,
    GenerationRequest,
    InsufficientBalanceError,
    RetryPolicy,
    TTAPIClient,
    mask_email,
)
from ttapi_mcp.emulator import Emulator

pytestmark = pytest.mark.anyio
EMAIL = "jane.doe@example.com"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def client(emulator: Emulator) -> AsyncIterator[TTAPIClient]:
    emulator.options.account_email = EMAIL
    async with TTAPIClient(str(emulator.base_url), CANARY_KEY,
                           retry=RetryPolicy(base_delay=0.01)) as api:
        yield api


async def test_balance_falls_by_the_emulators_price_per_call(
    emulator: Emulator, client: TTAPIClient
) -> None:
    emulator.options.starting_balance = 500
    before = await client.account_info()
    assert (before.balance, before.freeze_balance, before.max_queue) == (500, 0, 10)
    assert before.balance_usd == Decimal(5)
    await client.generate(GenerationRequest(prompt="p", model="dall-e-2", n=2))
    await client.generate(GenerationRequest(prompt="p", model="gpt-image-1", quality="low"))
    after = await client.account_info()
    assert after.balance == 500 - 2 * 2 - 1  # dall-e-2: 2 per image; gpt low 1024x1024: 1
    assert [r.method for r in emulator.api_requests("M1")] == ["GET", "GET"]


async def test_a_job_holds_its_price_and_pays_only_on_success(
    emulator: Emulator, client: TTAPIClient
) -> None:
    emulator.options.starting_balance = 10
    emulator.options.job_seconds = 0.3
    job_id = await client.submit_4o(FourOSubmitRequest(prompt="draw"))
    running = await client.account_info()
    assert (running.balance, running.freeze_balance) == (8, 2)
    with anyio.fail_after(10):
        while not (await client.fetch_4o(job_id)).is_terminal:
            await anyio.sleep(0.05)
    done = await client.account_info()
    assert (done.balance, done.freeze_balance) == (8, 0)
    emulator.options.job_outcome = "failed"
    emulator.options.job_seconds = 0
    await client.submit_4o(FourOSubmitRequest(prompt="draw"))
    assert (await client.account_info()).balance == 8  # a FAILED job costs nothing


async def test_a_call_the_balance_cannot_cover_is_a_402_and_is_not_processed(
    emulator: Emulator, client: TTAPIClient
) -> None:
    emulator.options.starting_balance = 1.5
    with pytest.raises(InsufficientBalanceError) as info:
        await client.generate(GenerationRequest(prompt="p", model="gpt-image-1",
                                                quality="high"))
    assert info.value.status == 402 and "nothing was billed" in str(info.value)
    assert "16 quota" in str(info.value) and CANARY_KEY not in str(info.value)
    with pytest.raises(InsufficientBalanceError):
        await client.submit_4o(FourOSubmitRequest(prompt="draw"))
    assert emulator.jobs.ended() == [] and emulator.api_requests("E5") == []
    assert (await client.account_info()).balance == Decimal("1.5")


async def test_the_email_is_masked_as_it_is_parsed(client: TTAPIClient) -> None:
    info = await client.account_info()
    assert info.email_masked == "j***@e***.com" and info.email_verified is True
    assert EMAIL not in repr(info) and EMAIL not in info.model_dump_json()
    assert mask_email(None) is None and mask_email("nobody") is None
    direct = AccountInfo.model_validate({"data": {"email": EMAIL, "balance": "12.5"}})
    assert direct.balance == Decimal("12.5") and EMAIL not in repr(direct)


async def test_account_resource_shows_balance_in_quota_and_dollars(
    server_settings: Any, emulator: Emulator, client_mode: str
) -> None:
    emulator.options.account_email = EMAIL
    emulator.options.starting_balance = 1234
    async with mcp_client(server_settings, client_mode) as mcp:
        listed = [str(r.uri) for r in (await mcp.list_resources()).resources]
        read = await mcp.read_resource("ttapi://account")
    assert "ttapi://account" in listed
    text = read.contents[0].text
    doc = json.loads(text)
    assert doc["balance"] == {"quota": 1234.0, "usd": 12.34}
    assert doc["frozen_balance"] == {"quota": 0.0, "usd": 0.0}
    assert doc["max_queue"] == 10 and doc["low_balance"] is False and "warning" not in doc
    assert EMAIL not in text and "j***" not in text and CANARY_KEY not in text


async def test_account_resource_warns_when_the_balance_is_low(
    server_settings: Any, emulator: Emulator
) -> None:
    emulator.options.starting_balance = 40
    async with mcp_client(server_settings) as mcp:
        doc = json.loads((await mcp.read_resource("ttapi://account")).contents[0].text)
    assert doc["low_balance"] is True
    assert "40 quota ($0.40)" in doc["warning"] and "top up" in doc["warning"]


def test_doctor_shows_the_balance_and_warns_when_low(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.options.account_email = EMAIL
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTAPI_")}
    env.update({"PYTHONPATH": str(ROOT), "TTAPI_BASE_URL": str(emulator.base_url),
                "TTAPI_API_KEY": CANARY_KEY, "TTAPI_OUTPUT_DIR": str(tmp_path / "out")})
    for balance, status in ((25_000, "OK"), (50, "WARN")):
        emulator.options.starting_balance = balance
        result = subprocess.run([sys.executable, "-m", "ttapi_mcp", "doctor"], env=env,
                                capture_output=True, text=True, timeout=60, cwd="/")
        line = next(x for x in result.stdout.splitlines() if "balance" in x)
        assert line.startswith(status), result.stdout
        assert f"{balance:g} quota (${balance / 100:.2f})" in line
        assert EMAIL not in result.stdout + result.stderr
        assert CANARY_KEY not in result.stdout + result.stderr
