"""Duplicate-call protection for gpt4o_image (both job routes): an identical call attaches
to the job the first one has, in this server or another one on the store, and pays
nothing; dedupe=false always submits. Real emulator, real mcp.Client, real SQLite."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import CANARY_KEY, make_server_settings, mcp_client
from test_peers import assert_store_whole, peer, peer_env, rows, until

from ttapi_mcp.emulator import Emulator, Fault
from ttapi_mcp.store import ImageStore

pytestmark = pytest.mark.anyio
ROUTES = [  # (extra arguments, the emulator's submit route)
    pytest.param({}, "E4", id="gpt-4o-image"),
    pytest.param({"model": "gpt-image-2", "aspect_ratio": "16:9"}, "A1", id="gpt-image-2"),
]


def _ledger_rows(settings: Any) -> int:
    with sqlite3.connect(settings.store_path) as db:
        return int(db.execute("SELECT COUNT(*) FROM ledger").fetchone()[0])


@pytest.mark.parametrize(("extra", "submit"), ROUTES)
async def test_simultaneous_identical_calls_pay_once_and_share_the_image(
    server_settings: Any, emulator: Emulator, client_mode: str,
    extra: dict[str, Any], submit: str,
) -> None:
    emulator.add_fault(Fault(route=submit, delay=0.5))  # both calls arrive while it submits
    args = {"prompt": "draw a lighthouse paid for once", **extra}
    results: dict[str, Any] = {}
    async with mcp_client(server_settings, client_mode) as client:

        async def call(name: str) -> None:
            results[name] = await client.call_tool("gpt4o_image", args)

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "a")
            tg.start_soon(call, "b")
        assert len(emulator.api_requests(submit)) == 1
        assert _ledger_rows(server_settings) == 1  # the attached call reserved nothing
        fresh = await client.call_tool("gpt4o_image", {**args, "dedupe": False})
    a, b = (results[n].structured_content for n in "ab")
    assert not results["a"].is_error and not results["b"].is_error, (a, b)
    assert a["status"] == b["status"] == "completed"
    assert a["job_id"] == b["job_id"]
    assert a["images"][0]["path"] == b["images"][0]["path"]
    assert [m for m in (a["message"], b["message"]) if m and "attached" in m]
    assert not fresh.is_error and fresh.structured_content["job_id"] != a["job_id"]
    assert len(emulator.api_requests(submit)) == 2  # dedupe=false pays for a new job


@pytest.mark.parametrize(("extra", "submit"), ROUTES)
async def test_wait_false_attaches_with_the_same_pending_answer(
    server_settings: Any, emulator: Emulator, client_mode: str,
    extra: dict[str, Any], submit: str,
) -> None:
    emulator.options.job_seconds = 5.0
    args = {"prompt": "draw a slow harbour", "wait": False, **extra}
    async with mcp_client(server_settings, client_mode) as client:
        first = (await client.call_tool("gpt4o_image", args)).structured_content
        again = await client.call_tool("gpt4o_image", args)
        refused = await client.call_tool("gpt4o_image", {**args, "dedupe": False})
    second = again.structured_content
    assert not again.is_error, again.content
    assert first["status"] == second["status"] == "pending"
    assert second["job_id"] == first["job_id"]
    assert second["next_call"] == first["next_call"] == {
        "tool": "fetch_job", "arguments": {"job_id": first["job_id"], "wait": True}}
    assert "attached" in second["message"] and "dedupe=false" in second["message"]
    assert refused.structured_content["job_id"] != first["job_id"]
    assert len(emulator.api_requests(submit)) == 2
    assert CANARY_KEY not in str(again.content) + str(second)


@pytest.mark.parametrize(("extra", "submit"), ROUTES)
async def test_a_finished_job_is_reused_only_within_the_window(
    emulator: Emulator, tmp_path: Path, extra: dict[str, Any], submit: str,
) -> None:
    emulator.options.job_seconds = 0.1
    args = {"prompt": "draw a windowed fox", **extra}
    plain = make_server_settings(emulator.base_url, tmp_path)
    async with mcp_client(plain) as client:
        one = (await client.call_tool("gpt4o_image", args)).structured_content
        two = (await client.call_tool("gpt4o_image", args)).structured_content
    assert one["status"] == two["status"] == "completed"
    assert two["job_id"] != one["job_id"]  # no window: a finished job is not reused
    assert len(emulator.api_requests(submit)) == 2
    windowed = plain.model_copy(update={"dedupe_window_seconds": 60.0})
    async with mcp_client(windowed) as client:
        three = (await client.call_tool("gpt4o_image", args)).structured_content
    assert three["status"] == "completed" and three["job_id"] == two["job_id"]
    assert three["images"][0]["path"] == two["images"][0]["path"]
    assert "attached" in three["message"]
    assert len(emulator.api_requests(submit)) == 2


async def test_different_arguments_are_different_calls(
    server_settings: Any, emulator: Emulator
) -> None:
    base = {"prompt": "draw a kite", "wait": False}
    async with mcp_client(server_settings) as client:
        for extra in ({}, {"model": "gpt-4o-image"}, {"model": "gpt-image-2"},
                      {"model": "gpt-image-2", "aspect_ratio": "9:16"},
                      {"refer_images": ["http://127.0.0.1:9/a.png"]}):
            await client.call_tool("gpt4o_image", {**base, **extra})
    # model=None and model="gpt-4o-image" are the same call; the others are not.
    assert len(emulator.api_requests("E4")) == 2
    assert len(emulator.api_requests("A1")) == 2


async def test_a_failed_submit_releases_its_claim_and_the_next_caller_submits(
    server_settings: Any, emulator: Emulator
) -> None:
    emulator.add_fault(Fault(route="E4", status=400, shape="envelope", message="bad luck",
                             delay=0.5))
    args = {"prompt": "draw an unlucky cat", "wait": False}
    results: dict[str, Any] = {}
    async with mcp_client(server_settings) as client:

        async def call(name: str) -> None:
            results[name] = await client.call_tool("gpt4o_image", args)

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "a")
            await until(lambda: emulator.arrived("E4"))
            tg.start_soon(call, "b")
    errors = [r for r in results.values() if r.is_error]
    ok = [r for r in results.values() if not r.is_error]
    assert len(errors) == 1 and "bad luck" in str(errors[0].content)
    assert len(ok) == 1 and ok[0].structured_content["status"] == "pending"
    assert len(emulator.api_requests("E4")) == 2  # the waiting caller submitted itself
    assert rows(server_settings.store_path, "SELECT COUNT(*) FROM submit_claims") == [(0,)]


async def test_a_claim_holds_identical_callers_and_expires_with_its_lease(
    tmp_path: Path
) -> None:
    async with ImageStore(tmp_path / "out", tmp_path / "s.sqlite3") as store:
        first = await store.claim_submit("k", 1e18, lease=0.3)
        assert first[0] == "claimed" and first[1]
        assert await store.claim_submit("k", 1e18, lease=0.3) == ("wait", None)
        assert (await store.claim_submit("other", 1e18, lease=0.3))[0] == "claimed"
        await anyio.sleep(0.4)  # its submitter crashed: the claim expires
        second = await store.claim_submit("k", 1e18, lease=0.3)
        assert second[0] == "claimed" and second[1] != first[1]
        await store.release_submit(first[1])  # a stale token releases nothing
        assert await store.claim_submit("k", 1e18, lease=0.3) == ("wait", None)
        await store.start_job("job-1", "4o", "p", "SUBMITTED", dedupe_key="k")
        assert await store.claim_submit("k", 1e18, lease=0.3) == ("job", "job-1")


@pytest.mark.parametrize(("extra", "submit"), ROUTES)
async def test_identical_calls_in_two_server_processes_pay_once(
    emulator: Emulator, tmp_path: Path, extra: dict[str, Any], submit: str,
) -> None:
    emulator.options.job_seconds = 0.5
    emulator.add_fault(Fault(route=submit, delay=1.0))
    env = peer_env(emulator, tmp_path)
    args = {"prompt": "draw a fox seen by two servers", **extra}
    results: dict[str, Any] = {}
    async with peer(env, tmp_path / "a.log") as a, peer(env, tmp_path / "b.log") as b:

        async def call_in(name: str, client: Any) -> None:
            results[name] = (await client.call_tool("gpt4o_image", args)).structured_content

        async with anyio.create_task_group() as tg:
            tg.start_soon(call_in, "a", a)
            tg.start_soon(call_in, "b", b)
    assert results["a"]["status"] == results["b"]["status"] == "completed", results
    assert results["a"]["job_id"] == results["b"]["job_id"]
    assert results["a"]["images"][0]["path"] == results["b"]["images"][0]["path"]
    assert len(emulator.api_requests(submit)) == 1
    assert len(emulator.api_requests("download")) == 1
    assert rows(tmp_path / "db.sqlite3", "SELECT COUNT(*) FROM ledger") == [(1,)]
    assert_store_whole(tmp_path)


async def test_a_job_whose_download_failed_is_not_attached_to(
    server_settings: Any, emulator: Emulator
) -> None:
    emulator.add_fault(Fault(route="download", kind="expired_url"))
    args = {"prompt": "draw a fox behind an expired link"}
    async with mcp_client(server_settings) as client:
        lost = await client.call_tool("gpt4o_image", args)
        again = await client.call_tool("gpt4o_image", args)
    assert lost.is_error and "re-run" in str(lost.content)
    assert not again.is_error, again.content
    assert again.structured_content["status"] == "completed"
    assert len(emulator.api_requests("E4")) == 2  # the re-run its error advised is a new job


async def test_a_submit_queued_longer_than_its_claim_still_holds_identical_callers(
    emulator: Emulator, tmp_path: Path
) -> None:
    # One upstream slot, taken by a slow generate_image call: the gpt4o_image submit
    # queues behind it for longer than its claim's lease (1 + 2 + 0.5 = 3.5 s), so only
    # the renewed claim keeps the identical call from paying again.
    settings = make_server_settings(
        emulator.base_url, tmp_path, max_concurrent_requests=1, connect_timeout=1.0,
        job_request_timeout=2.0, lease_seconds=0.5, lease_renew_seconds=0.2)
    emulator.options.job_seconds = 0.2
    emulator.add_fault(Fault(route="E1", delay=6.0))
    args = {"prompt": "a kite queued behind a slow call"}
    results: dict[str, Any] = {}
    async with mcp_client(settings) as client:

        async def call(name: str, tool: str, arguments: dict[str, Any]) -> None:
            results[name] = await client.call_tool(tool, arguments)

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "slow", "generate_image", {
                "prompt": "slow", "model": "dall-e-2", "size": "256x256"})
            await until(lambda: emulator.arrived("E1"), 10)  # it holds the slot
            tg.start_soon(call, "first", "gpt4o_image", args)
            await anyio.sleep(4.5)  # past the first claim's lease, had it not been renewed
            assert not emulator.arrived("E4")  # the first is still queued
            tg.start_soon(call, "second", "gpt4o_image", args)
    first, second = results["first"], results["second"]
    assert not first.is_error and not second.is_error, (first.content, second.content)
    assert first.structured_content["job_id"] == second.structured_content["job_id"]
    assert len(emulator.api_requests("E4")) == 1  # paid once
