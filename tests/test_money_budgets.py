"""Budgets: refused calls never reach TTAPI, reservations hold across processes, the
day and month roll over in the configured time zone, and the ledger tells what was spent.

The server runs against the emulator over real transports (in-memory mcp.Client, and
real ``ttapi-mcp serve`` stdio subprocesses sharing one SQLite store); the clock of the
in-process server is replaced through ``Services.clock``, its injection point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import pytest
from conftest import CANARY_KEY, make_server_settings

from ttapi_mcp.emulator import Emulator, Fault

ROOT = Path(__file__).resolve().parents[1]
DALLE2 = {"model": "dall-e-2", "size": "256x256", "response_format": "b64_json",
          "preview": "none"}
"""1.6 quota each with the default table."""


class Clock:
    """A wall clock the test moves."""

    def __init__(self, when: datetime) -> None:
        self.now = when.timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, when: datetime) -> None:
        self.now = when.timestamp()


@asynccontextmanager
async def client_with_clock(
    settings: Any, clock: Callable[[], float] | None = None, mode: str = "auto"
) -> AsyncIterator[Any]:
    from mcp import Client

    from ttapi_mcp.server.app import build_server

    server = build_server(settings)
    async with Client(server, mode=mode) as client:  # type: ignore[arg-type]
        assert server.startup is not None
        services = await server.startup.services()
        if clock is not None:
            services.clock = clock
        yield client


async def usage(client: Any) -> dict[str, Any]:
    read = await client.read_resource("ttapi://usage")
    return json.loads(read.contents[0].text)  # type: ignore[no-any-return]


def text_of(result: Any) -> str:
    return str(result.content[0].text)


@pytest.mark.anyio
async def test_over_budget_call_never_reaches_ttapi(
    emulator: Emulator, tmp_path: Path, client_mode: str
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path, budget_per_call=50)
    async with client_with_clock(settings, mode=client_mode) as client:
        result = await client.call_tool("generate_image", {
            "prompt": "ten posters", "model": "gpt-image-1", "n": 10, "quality": "high",
            "size": "1024x1024"})
        report = await usage(client)
    assert result.is_error
    text = text_of(result)
    assert "nothing was billed" in text and "about 167 quota ($1.67)" in text
    assert "budget_per_call (50 quota)" in text and "raise budget_per_call" in text
    assert emulator.api_requests() == []
    assert report["today"]["calls"] == 0


@pytest.mark.anyio
async def test_day_budget_refusal_says_spent_left_reset_and_setting(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path, budget_per_day=2,
                                    budget_timezone="Europe/Berlin")
    clock = Clock(datetime(2026, 6, 10, 15, 0, tzinfo=ZoneInfo("Europe/Berlin")))
    async with client_with_clock(settings, clock) as client:
        first = await client.call_tool("generate_image", {"prompt": "one", **DALLE2})
        emulator.clear_log()
        second = await client.call_tool("generate_image", {"prompt": "two", **DALLE2})
        report = await usage(client)
    assert not first.is_error, first.content
    assert second.is_error
    text = text_of(second)
    assert "estimated at about 1.6 quota ($0.02)" in text
    assert "budget_per_day is 2 quota and 1.6 quota is already spent or reserved today " \
        "(2026-06-10): 0.4 quota is left" in text
    assert "resets at 2026-06-11 00:00 Europe/Berlin" in text and "Raise budget_per_day" in text
    assert emulator.api_requests() == []
    today = report["today"]
    assert today["spent_quota"] == 1.6 and today["left_quota"] == 0.4
    assert today["by_model"][0]["model"] == "dall-e-2"
    assert today["by_tool"][0]["tool"] == "generate_image"


@pytest.mark.anyio
async def test_day_and_month_roll_over_in_the_budget_time_zone(
    emulator: Emulator, tmp_path: Path
) -> None:
    zone = ZoneInfo("America/New_York")
    settings = make_server_settings(emulator.base_url, tmp_path, budget_per_day=2,
                                    budget_per_month=4, budget_timezone="America/New_York")
    clock = Clock(datetime(2026, 1, 30, 23, 50, tzinfo=zone))
    outcomes: list[bool] = []
    async with client_with_clock(settings, clock) as client:

        async def call(tag: str) -> str:
            result = await client.call_tool("generate_image", {"prompt": tag, **DALLE2})
            outcomes.append(not result.is_error)
            return text_of(result)

        await call("jan 30 a")
        late = await call("jan 30 b")  # the day is full
        clock.set(datetime(2026, 1, 31, 0, 5, tzinfo=zone))  # 05:05 UTC: a new local day
        await call("jan 31 a")
        clock.set(datetime(2026, 1, 31, 23, 0, tzinfo=zone))
        full = await call("jan 31 b")  # day full again
        clock.set(datetime(2026, 2, 1, 0, 1, tzinfo=zone))
        await call("feb 1 a")  # new day and new month
        report = await usage(client)
    assert outcomes == [True, False, True, False, True]
    assert "resets at 2026-01-31 00:00 America/New_York" in late
    assert "resets at 2026-02-01 00:00 America/New_York" in full
    assert len(emulator.api_requests("E1")) == 3
    assert report["this_month"]["period"] == "this month (2026-02)"
    assert report["this_month"]["held_quota"] == 1.6


@pytest.mark.anyio
async def test_month_budget_refuses_once_the_month_is_spent(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path, budget_per_month=3)
    clock = Clock(datetime(2026, 5, 1, 12, 0, tzinfo=ZoneInfo("UTC")))
    async with client_with_clock(settings, clock) as client:
        first = await client.call_tool("generate_image", {"prompt": "may 1", **DALLE2})
        clock.set(datetime(2026, 5, 20, 12, 0, tzinfo=ZoneInfo("UTC")))
        second = await client.call_tool("generate_image", {"prompt": "may 20", **DALLE2})
        clock.set(datetime(2026, 6, 1, 0, 0, tzinfo=ZoneInfo("UTC")))
        third = await client.call_tool("generate_image", {"prompt": "june 1", **DALLE2})
    assert not first.is_error and second.is_error and not third.is_error
    assert "budget_per_month is 3 quota" in text_of(second)
    assert "resets at 2026-06-01 00:00 UTC" in text_of(second)


@pytest.mark.anyio
async def test_ten_concurrent_calls_against_a_budget_for_three_send_three(
    emulator: Emulator, tmp_path: Path, database_url: str | None
) -> None:
    emulator.options.latency_seconds = 0.3
    settings = make_server_settings(emulator.base_url, tmp_path, budget_per_day=5,
                                    database_url=database_url)
    results: list[Any] = []
    async with client_with_clock(settings) as client:

        async def one(i: int) -> None:
            results.append(await client.call_tool("generate_image",
                                                  {"prompt": f"call {i}", **DALLE2}))

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for i in range(10):
                    tg.start_soon(one, i)
        report = await usage(client)
    sent = [r for r in results if not r.is_error]
    refused = [r for r in results if r.is_error]
    assert len(sent) == 3 and len(refused) == 7
    assert all("budget_per_day" in text_of(r) for r in refused)
    assert len(emulator.api_requests("E1")) == 3
    assert report["today"]["calls"] == 3 and report["today"]["held_quota"] == pytest.approx(4.8)


def stdio_env(emulator: Emulator, tmp_path: Path, **budgets: str) -> dict[str, str]:
    """A stdio server's environment with the given budgets (TTAPI_BUDGET_...)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTAPI_")}
    env.update({
        "PYTHONPATH": str(ROOT), "TTAPI_BASE_URL": str(emulator.base_url),
        "TTAPI_API_KEY": CANARY_KEY, "TTAPI_OUTPUT_DIR": str(tmp_path / "out"),
        "TTAPI_DATABASE_PATH": str(tmp_path / "db" / "store.sqlite3"),
        "TTAPI_WAIT_BUDGET_SECONDS": "30", "TTAPI_RETRY_BASE_DELAY": "0.01", **budgets,
    })
    return env


@pytest.mark.anyio
async def test_budget_holds_across_two_server_processes_on_one_store(
    emulator: Emulator, tmp_path: Path, database_url: str | None
) -> None:
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    emulator.options.latency_seconds = 0.3
    env = stdio_env(emulator, tmp_path, TTAPI_BUDGET_PER_DAY="5")
    if database_url:  # the same test on one PostgreSQL database
        env["TTAPI_DATABASE_URL"] = database_url
    params = StdioServerParameters(command=sys.executable, args=["-m", "ttapi_mcp", "serve"],
                                   env=env, cwd="/")
    results: list[Any] = []
    with open(tmp_path / "stderr.log", "w") as errlog, anyio.fail_after(120):
        async with Client(stdio_client(params, errlog=errlog)) as first:
            await usage(first)  # the store exists (and is migrated) before the second starts
            async with Client(stdio_client(params, errlog=errlog)) as second:
                await usage(second)

                async def one(client: Any, i: int) -> None:
                    results.append(await client.call_tool(
                        "generate_image", {"prompt": f"process call {i}", **DALLE2}))

                async with anyio.create_task_group() as tg:
                    for i in range(10):
                        tg.start_soon(one, first if i % 2 else second, i)
                report = await usage(first)
    sent = [r for r in results if not r.is_error]
    assert len(results) == 10 and len(sent) == 3, [text_of(r)[:120] for r in results]
    assert all("budget_per_day" in text_of(r) for r in results if r.is_error)
    assert not any("locked" in text_of(r) for r in results)
    assert len(emulator.api_requests("E1")) == 3
    assert report["today"]["calls"] == 3


@pytest.mark.anyio
async def test_unbilled_failures_release_and_maybe_billed_ones_keep(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.options.job_seconds = 0.1
    settings = make_server_settings(emulator.base_url, tmp_path, budget_per_day=100,
                                    retry_max_attempts=1)
    async with client_with_clock(settings) as client:
        emulator.add_fault(Fault(route="E1", status=400, message="bad prompt"))
        refused = await client.call_tool("generate_image", {"prompt": "a 400", **DALLE2})
        emulator.add_fault(Fault(route="E1", status=500, message="server broke"))
        broken = await client.call_tool("generate_image", {"prompt": "a 500", **DALLE2})
        emulator.options.job_outcome = "failed"
        failed_job = await client.call_tool("gpt4o_image", {"prompt": "draw a failure"})
        emulator.options.job_outcome = "success"
        good_job = await client.call_tool("gpt4o_image", {"prompt": "draw a success"})
        report = await usage(client)
    assert refused.is_error and broken.is_error
    assert failed_job.structured_content["status"] == "failed"
    assert good_job.structured_content["status"] == "completed"
    from ttapi_mcp.store import ImageStore

    async with ImageStore(settings.output_dir, settings.store_path) as store:
        rows = await store.ledger_rows()
    by_state = [(r["tool"], r["state"], r["held_quota"], r["maybe_billed"]) for r in rows]
    assert by_state == [
        ("generate_image", "released", 0.0, 0),  # a 400 was not processed
        ("generate_image", "spent", 1.6, 1),  # a 500 may have been billed
        ("gpt4o_image", "released", 0.0, 0),  # TTAPI charges 0 for a FAILED job
        ("gpt4o_image", "spent", 2.0, 1),  # and reports 2 for a SUCCESS
    ]
    assert rows[3]["reported_quota"] == 2.0 and rows[3]["job_id"]
    assert rows[0]["job_id"].startswith("local-")  # each row names the job it paid for
    assert report["today"]["held_quota"] == pytest.approx(3.6)


def test_usage_command_prints_the_ledger(emulator: Emulator, tmp_path: Path) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path, budget_per_day=50)

    async def spend() -> None:
        async with client_with_clock(settings) as client:
            for i in range(2):
                await client.call_tool("generate_image", {"prompt": f"usage {i}", **DALLE2})
            await client.call_tool("gpt4o_image", {"prompt": "draw usage"})

    emulator.options.job_seconds = 0.1
    anyio.run(spend)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTAPI_")}
    env.update(PYTHONPATH=str(ROOT), TTAPI_OUTPUT_DIR=str(settings.output_dir),
               TTAPI_DATABASE_PATH=str(settings.store_path), TTAPI_BUDGET_PER_DAY="50")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ttapi_mcp", "usage", *args], env=env,
                              capture_output=True, text=True, timeout=60, check=False)

    table = run("--by", "tool")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert any(line.split()[:3] == ["generate_image", "2", "3.2"] for line in lines), lines
    assert any(line.split()[:3] == ["gpt4o_image", "1", "2"] for line in lines), lines
    assert "budget_per_day 50, 44.8 left" in table.stdout
    as_json = json.loads(run("--json", "--by", "model").stdout)
    calls = {g["model"]: g["calls"] for g in as_json["groups"]}
    assert calls == {"dall-e-2": 2, "gpt-4o-image": 1}
    assert as_json["today"]["budget_quota"] == 50
    today = datetime.now(ZoneInfo("UTC")).strftime("%Y-%m-%d")
    by_day = json.loads(run("--json", "--by", "day", "--since", today).stdout)
    assert [g["day"] for g in by_day["groups"]] == [today]
    assert json.loads(run("--json", "--since", "2999-01-01").stdout)["groups"] == []
    bad = run("--since", "yesterday")
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr


@pytest.mark.anyio
async def test_a_broken_ledger_never_crashes_a_call(emulator: Emulator, tmp_path: Path) -> None:
    """Without a day/month budget the call goes on; with one it is refused, clearly."""
    import sqlite3

    for index, budget in enumerate((None, 10.0)):
        settings = make_server_settings(emulator.base_url, tmp_path / str(index),
                                        budget_per_day=budget)
        emulator.clear_log()
        async with client_with_clock(settings) as client:
            with sqlite3.connect(settings.store_path) as conn:
                conn.execute("DROP TABLE ledger")
            result = await client.call_tool("generate_image", {"prompt": "no ledger", **DALLE2})
        if budget is None:
            assert not result.is_error, result.content
            assert len(emulator.api_requests("E1")) == 1
        else:
            assert result.is_error
            assert "budgets could not be checked" in text_of(result)
            assert "ttapi-mcp doctor" in text_of(result)
            assert emulator.api_requests() == []


@pytest.mark.anyio
async def test_an_identical_call_attaches_without_reserving_again(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.options.latency_seconds = 0.5
    settings = make_server_settings(emulator.base_url, tmp_path, budget_per_day=2)
    results: list[Any] = []
    async with client_with_clock(settings) as client:

        async def one() -> None:
            results.append(await client.call_tool("generate_image",
                                                  {"prompt": "same call", **DALLE2}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(one)
            await anyio.sleep(0.2)
            tg.start_soon(one)
        report = await usage(client)
    assert [r.is_error for r in results] == [False, False], [text_of(r) for r in results]
    assert len(emulator.api_requests("E1")) == 1
    assert report["today"]["calls"] == 1 and report["today"]["held_quota"] == 1.6


@pytest.mark.anyio
async def test_a_gpt4o_call_cancelled_while_queued_gives_its_reservation_back(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Reserved, then stopped waiting for an upstream slot: nothing was sent, so nothing
    stays reserved against the day's budget."""
    from conftest import mcp_client

    from ttapi_mcp.store import ImageStore

    emulator.options.latency_seconds = 1.5
    settings = make_server_settings(emulator.base_url, tmp_path, budget_per_day=100,
                                    max_concurrent_requests=1, progress_interval_seconds=0.05)
    notes: list[str] = []

    async def note(done: float, total: float | None, message: str | None) -> None:
        notes.append(message or "")

    with anyio.fail_after(30):
        async with mcp_client(settings) as client, anyio.create_task_group() as tg:
            tg.start_soon(client.call_tool, "generate_image", {"prompt": "first", **DALLE2})
            while not emulator.arrived("E1"):
                await anyio.sleep(0.02)
            with anyio.move_on_after(10) as waited:
                async with anyio.create_task_group() as queued:
                    queued.start_soon(lambda: client.call_tool(
                        "gpt4o_image", {"prompt": "draw the second"}, progress_callback=note))
                    while not any("queued" in n for n in notes):
                        await anyio.sleep(0.02)
                    queued.cancel_scope.cancel()
            assert not waited.cancelled_caught
    async with ImageStore(settings.output_dir, settings.store_path) as store:
        for _ in range(50):  # the server settles the cancelled call right after it ends
            rows = {r["tool"]: r for r in await store.ledger_rows()}
            if rows.get("gpt4o_image", {}).get("state") != "reserved":
                break
            await anyio.sleep(0.1)
    assert rows["gpt4o_image"]["state"] == "released" and rows["gpt4o_image"]["held_quota"] == 0
    assert rows["generate_image"]["state"] == "spent"
    assert emulator.api_requests("E4") == []
