"""Budgets per user: each signed-in user's own day and month share, on top of the
account-wide budgets, reserved in the same transaction.

Real components throughout: a loopback OAuth issuer signs real tokens, the server runs over
streamable HTTP (in a thread, or as two ``ttapi-mcp serve`` processes on one SQLite file
or one PostgreSQL database), stdio servers are real subprocesses, the emulator is TTAPI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import httpx2
import pytest
from conftest import CANARY_KEY, make_server_settings, serve_http
from oauth_issuer import LoopbackIssuer
from test_money_budgets import Clock, client_with_clock, stdio_env

from ttapi_mcp.emulator import Emulator

ROOT = Path(__file__).resolve().parents[1]
DALLE2 = {"model": "dall-e-2", "size": "256x256", "response_format": "b64_json",
          "preview": "none"}
"""1.6 quota each with the default table."""


@pytest.fixture
def issuer() -> Iterator[LoopbackIssuer]:
    with LoopbackIssuer() as running:
        yield running


async def as_user(origin: str, token: str, work: Any) -> Any:
    """``work(client)`` in one MCP session over streamable HTTP, signed in with ``token``."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http,
        Client(streamable_http_client(f"{origin}/mcp", http_client=http)) as client,
    ):
        return await work(client)


async def generate(client: Any, prompt: str) -> Any:
    return await client.call_tool("generate_image", {"prompt": prompt, **DALLE2})


async def usage(client: Any) -> dict[str, Any]:
    read = await client.read_resource("ttapi://usage")
    return json.loads(read.contents[0].text)  # type: ignore[no-any-return]


def text_of(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


@pytest.mark.anyio
async def test_one_user_spends_their_day_while_another_still_calls(
    emulator: Emulator, tmp_path: Path, issuer: LoopbackIssuer
) -> None:
    """alice's share is 3 quota: her second call is refused, bob's first goes through;
    the account's 4 quota then refuses carol, who has spent nothing."""
    settings = make_server_settings(emulator.base_url, tmp_path, oauth_issuer=issuer.issuer,
                                    budget_per_day=4, budget_per_user_day=3)
    with serve_http(settings, public=True) as origin:
        tokens = {name: issuer.token(f"{origin}/mcp", subject=name)
                  for name in ("alice", "bob", "carol")}

        async def twice(client: Any) -> tuple[Any, Any, dict[str, Any]]:
            first = await generate(client, "alice one")
            second = await generate(client, "alice two")
            return first, second, await usage(client)

        async def once(client: Any) -> tuple[Any, dict[str, Any]]:
            return await generate(client, "one more"), await usage(client)

        alice_first, alice_second, alice_usage = await as_user(origin, tokens["alice"], twice)
        bob_call, bob_usage = await as_user(origin, tokens["bob"], once)
        carol_call, carol_usage = await as_user(origin, tokens["carol"], once)
    assert not alice_first.is_error, text_of(alice_first)
    assert alice_second.is_error
    text = text_of(alice_second)
    today = datetime.now(ZoneInfo("UTC")).strftime("%Y-%m-%d")
    assert "nothing was billed" in text and "estimated at about 1.6 quota ($0.02)" in text
    assert ("budget_per_user_day is 3 quota per user and this user ('alice') has already "
            f"spent or reserved 1.6 quota today ({today}): 1.4 quota is left") in text
    assert "The day's budget resets at" in text and "Raise budget_per_user_day" in text
    assert alice_usage["you"]["user"] == "alice"
    assert alice_usage["you"]["today"]["held_quota"] == 1.6
    assert alice_usage["you"]["today"]["left_quota"] == 1.4
    assert alice_usage["you"]["today"]["budget_setting"] == "budget_per_user_day"
    assert alice_usage["budget_per_user_day"] == 3 and "users" not in alice_usage

    assert not bob_call.is_error, text_of(bob_call)
    assert bob_usage["you"] == {**bob_usage["you"], "user": "bob"}
    assert bob_usage["you"]["today"]["held_quota"] == 1.6  # his own, not alice's
    assert bob_usage["today"]["held_quota"] == 3.2  # the account's

    assert carol_call.is_error  # the account-wide budget still caps everyone
    carol_text = text_of(carol_call)
    assert "budget_per_day is 4 quota and 3.2 quota is already spent or reserved" in carol_text
    assert "0.8 quota is left" in carol_text and "Raise budget_per_day" in carol_text
    assert carol_usage["you"]["today"]["held_quota"] == 0
    assert "alice" not in json.dumps(carol_usage)  # no other user's name or spend
    for period in ("today", "this_month"):  # nor what the others made: totals only
        assert "by_model" not in carol_usage[period] and "by_tool" not in carol_usage[period]
    assert len(emulator.api_requests("E1")) == 2


@pytest.mark.anyio
async def test_a_user_month_budget_rolls_over_with_the_month(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Without sign-in the one local user has the per-user budget, here the month's."""
    settings = make_server_settings(emulator.base_url, tmp_path, budget_per_user_month=3,
                                    budget_timezone="Europe/Berlin")
    clock = Clock(datetime(2026, 5, 2, 12, 0, tzinfo=ZoneInfo("Europe/Berlin")))
    async with client_with_clock(settings, clock) as client:
        first = await generate(client, "may 2")
        clock.set(datetime(2026, 5, 31, 23, 30, tzinfo=ZoneInfo("Europe/Berlin")))
        second = await generate(client, "may 31")
        clock.set(datetime(2026, 6, 1, 0, 5, tzinfo=ZoneInfo("Europe/Berlin")))
        third = await generate(client, "june 1")
        report = await usage(client)
    assert not first.is_error and second.is_error and not third.is_error
    text = text_of(second)
    assert ("budget_per_user_month is 3 quota per user and this user ('local') has already "
            "spent or reserved 1.6 quota this month (2026-05): 1.4 quota is left") in text
    assert "The month's budget resets at 2026-06-01 00:00 Europe/Berlin" in text
    assert report["you"]["this_month"]["held_quota"] == 1.6
    assert report["you"]["this_month"]["period"] == "this month (2026-06)"


@pytest.mark.anyio
async def test_in_stdio_mode_the_local_user_has_the_per_user_budget(
    emulator: Emulator, tmp_path: Path
) -> None:
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    env = stdio_env(emulator, tmp_path, TTAPI_BUDGET_PER_USER_DAY="3")
    params = StdioServerParameters(command=sys.executable, args=["-m", "ttapi_mcp", "serve"],
                                   env=env, cwd="/")
    with open(tmp_path / "stderr.log", "w") as errlog, anyio.fail_after(120):
        async with Client(stdio_client(params, errlog=errlog)) as client:
            first = await generate(client, "stdio one")
            second = await generate(client, "stdio two")
            report = await usage(client)
    assert not first.is_error, text_of(first)
    assert second.is_error
    assert "budget_per_user_day is 3 quota per user and this user ('local')" in text_of(second)
    assert report["you"]["user"] == "local" and report["you"]["today"]["left_quota"] == 1.4
    assert len(emulator.api_requests("E1")) == 1

    shown = subprocess.run([sys.executable, "-m", "ttapi_mcp", "usage"], env=env,
                           capture_output=True, text=True, timeout=60, check=False)
    assert shown.returncode == 0, shown.stderr
    assert ("User 'local': today 1.6 quota in 1 call(s) (budget_per_user_day 3, 1.4 left); "
            "this month 1.6 quota in 1 call(s) (no budget_per_user_month set).") in shown.stdout
    as_json = json.loads(subprocess.run(
        [sys.executable, "-m", "ttapi_mcp", "usage", "--json"], env=env, capture_output=True,
        text=True, timeout=60, check=True).stdout)
    assert as_json["budget_per_user_day"] == 3
    assert [u["user"] for u in as_json["users"]] == ["local"]


@pytest.mark.anyio
async def test_two_processes_racing_for_one_users_last_room_never_both_pass(
    emulator: Emulator, tmp_path: Path, issuer: LoopbackIssuer, database_url: str | None
) -> None:
    """Two HTTP server processes on one database; alice's share covers three calls and she
    sends ten at once through both: exactly three reach TTAPI. bob's share is untouched."""
    from httpproc import free_port, serve_process

    emulator.options.latency_seconds = 0.3
    ports = [free_port(), free_port()]
    base = {k: v for k, v in os.environ.items() if not k.startswith("TTAPI_")}
    base.update({
        "PYTHONPATH": str(ROOT), "TTAPI_BASE_URL": str(emulator.base_url),
        "TTAPI_API_KEY": CANARY_KEY, "TTAPI_OUTPUT_DIR": str(tmp_path / "out"),
        "TTAPI_DATABASE_PATH": str(tmp_path / "db" / "store.sqlite3"),
        "TTAPI_OAUTH_ISSUER": issuer.issuer, "TTAPI_BUDGET_PER_USER_DAY": "5",
        "TTAPI_BUDGET_PER_DAY": "100", "TTAPI_WAIT_BUDGET_SECONDS": "30",
        "TTAPI_RETRY_BASE_DELAY": "0.01", "TTAPI_ALLOW_PRIVATE_URLS": "true",
    })
    if database_url:
        base["TTAPI_DATABASE_URL"] = database_url
    origins = [f"http://127.0.0.1:{p}" for p in ports]
    results: list[Any] = []
    with (
        serve_process({**base, "TTAPI_PUBLIC_BASE_URL": origins[0]}, ports[0],
                      tmp_path / "first.log"),
        serve_process({**base, "TTAPI_PUBLIC_BASE_URL": origins[1]}, ports[1],
                      tmp_path / "second.log"),
        anyio.fail_after(120),
    ):
        go, ready = anyio.Event(), [0]

        async def at_once(client: Any, i: int) -> Any:
            ready[0] += 1
            await go.wait()  # every session open: the ten calls leave together
            return await generate(client, f"race {i}")

        async def one(i: int) -> None:
            origin = origins[i % 2]
            token = issuer.token(f"{origin}/mcp", subject="alice")
            results.append(await as_user(origin, token, lambda c: at_once(c, i)))

        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(one, i)
            while ready[0] < 10:
                await anyio.sleep(0.02)
            go.set()
        bob = issuer.token(f"{origins[1]}/mcp", subject="bob")
        bob_call = await as_user(origins[1], bob, lambda c: generate(c, "bob's turn"))
    sent = [r for r in results if not r.is_error]
    assert len(results) == 10 and len(sent) == 3, [text_of(r)[:160] for r in results]
    refused = [text_of(r) for r in results if r.is_error]
    assert all("budget_per_user_day is 5 quota per user and this user ('alice')" in t
               for t in refused), refused
    assert not any("locked" in t for t in refused)
    assert not bob_call.is_error, text_of(bob_call)
    assert len(emulator.api_requests("E1")) == 4


RESERVER = """
import sys, time, anyio
from pathlib import Path
from ttapi_mcp.store import ImageStore
from ttapi_mcp.store.ledger import Limit

folder, url, user, tries = Path(sys.argv[1]), sys.argv[2] or None, sys.argv[3], int(sys.argv[4])
limits = [Limit(0.0, 2e9, 200.0), Limit(0.0, 2e9, 30.0, per_user=True)]

async def main():
    store = ImageStore(folder / "out", folder / "store.sqlite3", database_url=url)
    store.current_user = lambda: user
    async with store:
        print("ready", flush=True)
        for _ in range(3000):  # at most 30 s for the parent's go: a moment just ahead
            if (folder / "go").exists() and (folder / "go").read_text():
                await anyio.sleep(max(0.0, float((folder / "go").read_text()) - time.time()))
                break
            await anyio.sleep(0.01)
        won = 0
        for _ in range(tries):
            got = await store.reserve(now=time.time(), tool="generate_image", model="m",
                                      route="E1", images=1, estimate=1.0, basis="test",
                                      limits=limits)
            won += got.ledger_id is not None
        print("won", won, flush=True)

anyio.run(main)
"""


@pytest.mark.anyio
async def test_processes_reserving_at_once_never_exceed_one_users_share(
    tmp_path: Path, database_url: str | None
) -> None:
    """Four processes reserve for alice (share 30) and one for bob, on one database, at
    the same moment, 20 tries each: alice gets exactly 30, bob all of his."""
    from ttapi_mcp.store import ImageStore

    async with ImageStore(tmp_path / "out", tmp_path / "store.sqlite3",
                          database_url=database_url):
        pass  # created and migrated before the racers open it
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTAPI_")}
    env["PYTHONPATH"] = str(ROOT)
    users = ["alice", "alice", "bob", "alice", "alice"]
    procs = [subprocess.Popen(
        [sys.executable, "-c", RESERVER, str(tmp_path), database_url or "", user,
         "10" if user == "bob" else "20"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")
        for user in users]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.communicate(timeout=30)
        (tmp_path / "go.tmp").write_text(str(time.time() + 0.3))
        (tmp_path / "go.tmp").rename(tmp_path / "go")
        outputs = [proc.communicate(timeout=60) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    won = {"alice": 0, "bob": 0}
    for user, (out, err) in zip(users, outputs, strict=True):
        assert out.startswith("won "), err
        won[user] += int(out.split()[1])
    assert won == {"alice": 30, "bob": 10}
    async with ImageStore(tmp_path / "out", tmp_path / "store.sqlite3",
                          database_url=database_url) as store:
        assert await store.held_between(0.0, 2e9, user="alice") == 30.0
        assert await store.held_between(0.0, 2e9, user="bob") == 10.0
        assert await store.held_between(0.0, 2e9) == 40.0
