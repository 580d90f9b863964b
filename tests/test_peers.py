"""Several servers on one store (issue 12), with real processes.

Each server of the five scenarios of the issue is a real ``ttapi-mcp serve`` subprocess
over stdio, all on one SQLite file and one output folder, talking to the emulator (with
latency and job timing). The last two tests use in-process servers (one behind real
streamable HTTP for TTAPI's hook) on one store. Leases are short here (1 s, renewed every
0.2 s) so that expiry is quick to see.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import CANARY_KEY, make_server_settings, mcp_client, serve_http
from test_long_work import Notes, read_json
from test_server_transports import StrictStdio, _server_env

from ttapi_mcp.emulator import Emulator, Fault

pytestmark = pytest.mark.anyio
DALLE2 = {"model": "dall-e-2", "size": "256x256", "response_format": "b64_json",
          "preview": "none"}


def peer_env(emulator: Emulator, tmp_path: Path, **extra: str) -> dict[str, str]:
    return _server_env(emulator, tmp_path, TTAPI_LEASE_SECONDS="1",
                       TTAPI_LEASE_RENEW_SECONDS="0.2", TTAPI_STORE_POLL_SECONDS="0.05",
                       TTAPI_LOG_LEVEL="INFO", **extra)


@asynccontextmanager
async def peer(env: dict[str, str], log: Path) -> AsyncIterator[Any]:
    """An mcp.Client on a fresh ``serve`` subprocess; its stderr goes to ``log``."""
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(command=sys.executable, args=["-m", "ttapi_mcp", "serve"],
                                   env=env, cwd="/")
    with open(log, "w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            await read_json(client, "ttapi://jobs")  # its services (and recovery) are up
            yield client


@contextmanager
def doomed_server(env: dict[str, str]) -> Iterator[StrictStdio]:
    """A ``serve`` process spoken to by hand (initialised), for a test to SIGKILL mid-job
    (``.proc``); killed on the way out if it still runs."""
    proc = subprocess.Popen([sys.executable, "-m", "ttapi_mcp", "serve"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env, cwd="/")
    try:
        a = StrictStdio(proc)
        a.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                 "clientInfo": {"name": "doomed", "version": "1"}})
        a.send("notifications/initialized", notify=True)
        yield a
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def rows(database: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database, timeout=10) as conn:
        return conn.execute(sql, args).fetchall()


async def until(check: Any, seconds: float = 20.0) -> Any:
    """Poll a plain function until it returns something truthy; bounded."""
    with anyio.fail_after(seconds):
        while not (value := check()):
            await anyio.sleep(0.05)
        return value


def assert_store_whole(tmp_path: Path) -> None:
    """Every image file has its row with the right sha256, every row its file."""
    recorded = dict(rows(tmp_path / "db.sqlite3", "SELECT path, sha256 FROM images"))
    files = {str(p) for p in (tmp_path / "out").iterdir() if p.is_file()}
    assert files == set(recorded), (files ^ set(recorded))
    for path, digest in recorded.items():
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == digest, path


# -- 1. a second server leaves a running job alone, and can wait for it ----------------


async def test_b_starting_while_a_runs_leaves_the_job_alone_and_returns_its_result(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.options.latency_seconds = 6.0  # B's start-up (a new process) takes 1-3 s
    env = peer_env(emulator, tmp_path, TTAPI_PROGRESS_INTERVAL_SECONDS="0.2")
    async with peer(env, tmp_path / "a.log") as a:
        started = await a.call_tool("generate_image", {"prompt": "a shared fox", **DALLE2,
                                                       "wait": False})
        job_id = started.structured_content["job_id"]
        async with peer(env, tmp_path / "b.log") as b:
            await anyio.sleep(1.2)  # past a whole lease: B's sweeps ran and must not touch it
            seen = await read_json(b, f"ttapi://jobs/{job_id}")
            listed = await read_json(b, "ttapi://jobs")
            pending = await b.call_tool("fetch_job", {"job_id": job_id})
            with anyio.move_on_after(0.3):  # cancelling B's wait stops only that wait
                await b.call_tool("fetch_job", {"job_id": job_id, "wait": True})
            notes, results = Notes(), {}

            async def wait_in(name: str, client: Any, **kw: Any) -> None:
                results[name] = await client.call_tool(
                    "fetch_job", {"job_id": job_id, "wait": True}, **kw)

            async with anyio.create_task_group() as tg:
                tg.start_soon(wait_in, "a", a)
                tg.start_soon(lambda: wait_in("b", b, progress_callback=notes))
            again = await a.call_tool("fetch_job", {"job_id": job_id})

    assert seen["status"] == "running" and seen["owner_pid"] != os.getpid()
    assert "waiting for TTAPI" in (seen["phase"] or ""), seen
    assert "waiting for TTAPI" in next(j for j in listed["jobs"] if j["job_id"] == job_id)["phase"]
    assert pending.structured_content["status"] == "pending"
    assert pending.structured_content["next_call"] == {
        "tool": "fetch_job", "arguments": {"job_id": job_id, "wait": True}}
    owner, other = results["a"].structured_content, results["b"].structured_content
    assert owner["status"] == "completed", owner
    assert other == owner  # exactly the owner's result: paths, URIs, usage, ...
    assert again.structured_content == owner
    assert Path(other["images"][0]["path"]).is_file()
    assert notes.saw(f"job {job_id}: waiting for TTAPI"), notes.messages
    assert len(emulator.api_requests("E1")) == 1
    assert "interrupted" not in json.dumps(other) + (tmp_path / "b.log").read_text()


# -- 2. a killed server's jobs are recovered by the survivor ----------------------------


async def test_after_a_is_killed_b_interrupts_its_local_job_and_collects_its_4o_job(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.options.latency_seconds = 3.0
    emulator.options.job_seconds = 3.0
    env = peer_env(emulator, tmp_path)
    database = tmp_path / "db.sqlite3"
    async with peer(env, tmp_path / "b.log") as b:
        with doomed_server(env) as a:
            submitted = a.request("tools/call", {"name": "gpt4o_image", "arguments": {
                "prompt": "draw an orphaned boat", "wait": False}})
            job_id = submitted["result"]["structuredContent"]["job_id"]
            a.send("tools/call", {"name": "generate_image", "arguments": {
                "prompt": "a cut-off call", **DALLE2}})
            await until(lambda: emulator.arrived("E1"))
            await anyio.sleep(1.3)  # A alive: a whole lease later, B has touched nothing
            before = rows(database, "SELECT kind, status FROM jobs ORDER BY kind")
            a.proc.send_signal(signal.SIGKILL)
            a.proc.wait(10)
            killed_at = time.monotonic()
            local = await until(lambda: rows(
                database, "SELECT job_id, message FROM jobs WHERE kind = 'generate'"
                          " AND status = 'interrupted'"))
            noticed = time.monotonic() - killed_at
            await until(lambda: rows(database, "SELECT 1 FROM jobs WHERE job_id = ?"
                                               " AND image_ids != '[]'", job_id))
            fetched = await b.call_tool("fetch_job", {"job_id": job_id})
            fetched_local = await b.call_tool("fetch_job", {"job_id": local[0][0]})
    assert before == [("4o", "SUBMITTED"), ("generate", "running")]
    assert 0.5 < noticed < 5, noticed  # after A's lease ran out, by B's sweep
    assert "may already have completed upstream and been billed" in local[0][1]
    assert fetched_local.structured_content["job_status"] == "interrupted"
    assert fetched.structured_content["status"] == "completed"
    images = rows(database, "SELECT path FROM images WHERE job_id = ?", job_id)
    assert len(images) == 1 and Path(images[0][0]).is_file()
    assert len(emulator.api_requests("download")) == 1
    assert_store_whole(tmp_path)


# -- 3. one collector per upstream job ----------------------------------------------------


async def test_a_4o_job_watched_by_two_servers_is_downloaded_once(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.options.job_seconds = 2.0
    env = peer_env(emulator, tmp_path)
    results: dict[str, Any] = {}
    async with peer(env, tmp_path / "a.log") as a, peer(env, tmp_path / "b.log") as b:
        submitted = await a.call_tool("gpt4o_image", {"prompt": "draw a twice-watched kite",
                                                      "wait": False})
        job_id = submitted.structured_content["job_id"]

        async def wait_in(name: str, client: Any) -> None:
            results[name] = (await client.call_tool(
                "fetch_job", {"job_id": job_id, "wait": True})).structured_content

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait_in, "a", a)
            tg.start_soon(wait_in, "b", b)
        later = {name: (await c.call_tool("fetch_job", {"job_id": job_id})).structured_content
                 for name, c in (("a", a), ("b", b))}
    paths = {r["images"][0]["path"] for r in [*results.values(), *later.values()]}
    assert all(r["status"] == "completed" for r in results.values()), results
    assert len(paths) == 1 and Path(paths.pop()).is_file()
    assert len(emulator.api_requests("download")) == 1
    assert rows(tmp_path / "db.sqlite3", "SELECT COUNT(*) FROM images") == [(1,)]
    assert rows(tmp_path / "db.sqlite3", "SELECT collector_id FROM jobs") == [(None,)]
    assert_store_whole(tmp_path)


# -- 4. an identical call in another server attaches to the running job -------------------


async def test_the_identical_call_in_b_attaches_to_as_running_job(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.options.latency_seconds = 2.0
    env = peer_env(emulator, tmp_path)
    args = {"prompt": "a fox paid for once", **DALLE2}
    results: dict[str, Any] = {}
    async with peer(env, tmp_path / "a.log") as a, peer(env, tmp_path / "b.log") as b:

        async def call_in(name: str, client: Any) -> None:
            results[name] = (await client.call_tool("generate_image", args)).structured_content

        async with anyio.create_task_group() as tg:
            tg.start_soon(call_in, "a", a)
            await until(lambda: emulator.arrived("E1"))
            tg.start_soon(call_in, "b", b)
        assert len(emulator.api_requests("E1")) == 1
        fresh = await b.call_tool("generate_image", {**args, "dedupe": False})
    assert results["a"]["status"] == "completed", results
    assert results["b"]["job_id"] == results["a"]["job_id"]
    assert results["b"]["images"] == results["a"]["images"]
    assert fresh.structured_content["images"] != results["a"]["images"]
    assert len(emulator.api_requests("E1")) == 2  # dedupe=false still pays for a new draw
    assert_store_whole(tmp_path)


# -- 5. load: three servers, one store, faults ---------------------------------------------

SERVERS, CALLS_EACH, CONCURRENCY, FAULT_EVERY = 3, 30, 5, 20
FAULTS = itertools.cycle([
    {"status": 503}, {"status": 500}, {"status": 429, "retry_after": "0"}, {"kind": "drop"},
    {"kind": "truncated_b64"}, {"status": 502}, {"kind": "malformed_json"},
])


def _load_call(server: int, number: int) -> tuple[str, dict[str, Any]]:
    """Mostly distinct cheap calls; every tenth the same in every server (dedupe across
    processes), every fifteenth a GPT-4o job (collected by one of them)."""
    if number % 15 == 14:
        return "gpt4o_image", {"prompt": f"draw load job {server}-{number}"}
    prompt = f"shared load call {number}" if number % 10 == 3 else f"load {server}-{number}"
    return "generate_image", {"prompt": prompt, **DALLE2}


async def test_three_servers_thirty_calls_each_with_faults_keep_the_store_whole(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.options.latency_seconds = 0.2
    emulator.options.job_seconds = 0.3
    env = peer_env(emulator, tmp_path, TTAPI_RETRY_BASE_DELAY="0.01",
                   TTAPI_RETRY_MAX_DELAY="0.05")
    answers: list[Any] = []
    errors: list[str] = []
    crashes: list[str] = []
    shared: list[Any] = []
    counter = itertools.count()

    async def worker(client: Any, server: int, numbers: Any) -> None:
        for number in numbers:
            if next(counter) % FAULT_EVERY == FAULT_EVERY - 1:
                emulator.add_fault(Fault(route="E1", **next(FAULTS)))
            tool, args = _load_call(server, number)
            try:
                result = await client.call_tool(tool, args)
            except Exception as exc:  # a protocol or transport failure: not an answer
                crashes.append(f"{server}-{number}: {type(exc).__name__}: {exc}")
                continue
            for _ in range(5):  # a loaded machine can outlast the wait budget: follow up
                pending = not result.is_error and result.structured_content["status"] == "pending"
                if not pending:
                    break
                result = await client.call_tool("fetch_job", {
                    "job_id": result.structured_content["job_id"], "wait": True})
            if result.is_error:
                errors.append(" ".join(getattr(b, "text", "") for b in result.content))
            else:
                answers.append(result.structured_content)
                if "shared" in args["prompt"]:
                    shared.append(result.structured_content)

    with anyio.fail_after(90):
        async with AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(peer(env, tmp_path / f"s{i}.log"))
                       for i in range(SERVERS)]
            async with anyio.create_task_group() as tg:
                for server, client in enumerate(clients):
                    numbers = iter(range(CALLS_EACH))
                    for _ in range(CONCURRENCY):
                        tg.start_soon(worker, client, server, numbers)
    logs = "".join((tmp_path / f"s{i}.log").read_text(errors="replace") for i in range(SERVERS))
    doctor = subprocess.run([sys.executable, "-m", "ttapi_mcp", "doctor"], env=env,
                            capture_output=True, text=True, timeout=60, cwd="/")

    assert crashes == []
    assert len(answers) + len(errors) == SERVERS * CALLS_EACH
    assert len(errors) <= SERVERS * CALLS_EACH // FAULT_EVERY + 1, errors
    for text in errors:
        assert "TTAPI" in text and len(text) > 60, text
    everything = json.dumps(answers) + " ".join(errors) + logs
    assert "locked" not in everything and "Traceback" not in logs, logs[-3000:]
    assert CANARY_KEY not in everything
    assert all(a["status"] in ("completed", "partial") for a in answers), [
        (a["status"], a.get("job_id"), a.get("message")) for a in answers]
    assert shared and all(a["images"] for a in shared)  # identical calls across servers
    assert rows(tmp_path / "db.sqlite3", "SELECT COUNT(*) FROM jobs WHERE status IN"
                " ('running', 'SUBMITTED', 'ON_QUEUE')") == [(0,)]
    assert_store_whole(tmp_path)
    checks = {line.split()[1] + " " + line.split()[2]: line for line in doctor.stdout.splitlines()
              if line.strip()}
    for name in ("store /", "temporary files", "files w/o", "rows w/o"):
        found = [line for key, line in checks.items() if key.startswith(name.split()[0])]
        assert found and all(line.startswith("OK") for line in found), doctor.stdout


# -- the webhook claims like any other collector --------------------------------------------


async def test_a_hook_for_a_job_another_server_collects_downloads_nothing_twice(
    emulator: Emulator, tmp_path: Path
) -> None:
    from mcp import Client

    emulator.options.job_seconds = 1.0
    shared = dict(output_dir=tmp_path / "out", database_path=tmp_path / "db.sqlite3",
                  lease_seconds=1, lease_renew_seconds=0.2, store_poll_seconds=0.05)
    hooked = make_server_settings(emulator.base_url, tmp_path, poll_first_delay=60,
                                  poll_interval=60, poll_max_interval=60, **shared)
    polling = make_server_settings(emulator.base_url, tmp_path, **shared)
    with serve_http(hooked, public=True) as origin:
        async with Client(f"{origin}/mcp") as a, mcp_client(polling) as b:
            submitted = await a.call_tool("gpt4o_image", {"prompt": "draw a hooked heron",
                                                          "wait": False})
            job_id = submitted.structured_content["job_id"]
            by_b = await b.call_tool("fetch_job", {"job_id": job_id, "wait": True})
            await until(lambda: emulator.hook_deliveries, 10)
            by_a = await a.call_tool("fetch_job", {"job_id": job_id, "wait": True})
    assert emulator.hook_deliveries[0].status == 200
    assert by_b.structured_content["status"] == "completed", by_b.content
    assert by_a.structured_content["images"][0]["path"] == by_b.structured_content[
        "images"][0]["path"]
    assert len(emulator.api_requests("download")) == 1
    assert rows(tmp_path / "db.sqlite3", "SELECT COUNT(*) FROM images") == [(1,)]


async def test_a_partial_result_with_usage_reads_the_same_in_another_server(
    emulator: Emulator, tmp_path: Path
) -> None:
    """What the owner records is all another server needs: images with their upstream
    positions, the missing one, usage, the message."""
    emulator.options.latency_seconds = 1.0
    emulator.add_fault(Fault(route="E1", kind="truncated_b64"))
    settings = make_server_settings(emulator.base_url, tmp_path, lease_seconds=1,
                                    lease_renew_seconds=0.2, store_poll_seconds=0.05)
    args = {"prompt": "two foxes, one lost", "model": "gpt-image-1", "size": "1024x1024",
            "quality": "low", "n": 2, "preview": "none", "wait": False}
    results: dict[str, Any] = {}
    async with mcp_client(settings) as a, mcp_client(settings) as b:
        job_id = (await a.call_tool("generate_image", args)).structured_content["job_id"]

        async def wait_in(name: str, client: Any) -> None:
            results[name] = (await client.call_tool(
                "fetch_job", {"job_id": job_id, "wait": True})).structured_content

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait_in, "a", a)
            tg.start_soon(wait_in, "b", b)
    owner = results["a"]
    assert owner["status"] == "partial" and owner["usage"], owner
    assert [m["index"] for m in owner["missing"]] == [1]
    assert results["b"] == owner


async def test_the_dedupe_window_applies_across_servers(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path, dedupe_window_seconds=60)
    args = {"prompt": "a fox in a window", **DALLE2}
    async with mcp_client(settings) as a, mcp_client(settings) as b:
        first = (await a.call_tool("generate_image", args)).structured_content
        again = (await b.call_tool("generate_image", args)).structured_content
        fresh = (await b.call_tool("generate_image", {**args, "dedupe": False}))
    assert again["images"] == first["images"]
    assert "identical call" in (again["message"] or "")
    assert fresh.structured_content["images"] != first["images"]
    assert len(emulator.api_requests("E1")) == 2


async def test_a_server_stopping_cleanly_hands_its_4o_jobs_over_at_once(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.options.job_seconds = 0.5
    long_lease = make_server_settings(emulator.base_url, tmp_path, lease_seconds=60)
    sweeping = make_server_settings(emulator.base_url, tmp_path, lease_seconds=60,
                                    lease_renew_seconds=0.2)
    async with mcp_client(sweeping) as b:
        async with mcp_client(long_lease) as a:
            submitted = await a.call_tool("gpt4o_image", {"prompt": "draw a handed-over cup",
                                                          "wait": False})
            job_id = submitted.structured_content["job_id"]
            await anyio.sleep(1.0)  # A alive, its lease long: B leaves the job alone
            untouched = await read_json(b, f"ttapi://jobs/{job_id}")
        started = time.monotonic()  # A stopped: its claims are given back, not left to expire

        async def saved() -> Any:
            row = await read_json(b, f"ttapi://jobs/{job_id}")
            return row if row["image_uris"] else None

        with anyio.fail_after(10):
            while not (row := await saved()):
                await anyio.sleep(0.05)
    assert untouched["status"] == "SUBMITTED" and untouched["collector_id"] is None
    assert time.monotonic() - started < 10  # far less than A's 60 s lease
    assert row["status"] == "SUCCESS"
    assert len(emulator.api_requests("download")) == 1
