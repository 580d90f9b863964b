"""Several servers on one store, crossed with the 2026 routes: the async GPT route's jobs
and streamed partial images, with real ``ttapi-mcp serve`` subprocesses on one SQLite
file (as in test_peers.py), against the emulator.

What crosses: a GPT-route job has one collector however many servers watch it, is taken
over on its own route when its owner dies, and an id no server has seen is found on
either route; a streamed call's result is what a second server returns too, and its
partial images are never counted as results by ``doctor``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from conftest import CANARY_KEY
from PIL import Image
from test_long_work import Notes, read_json
from test_peers import assert_store_whole, doomed_server, peer, peer_env, rows, until

from ttapi_mcp.emulator import Emulator

pytestmark = pytest.mark.anyio
GPT2 = {"model": "gpt-image-2", "aspect_ratio": "16:9"}


def fetched_ids(emulator: Emulator, route: str) -> list[str]:
    """The job ids a fetch route was asked about (POST JSON or GET query)."""
    return [str((r.json or {}).get("jobId") or r.query.get("jobId"))
            for r in emulator.api_requests(route)]


async def wait_in_both(clients: dict[str, Any], job_id: str, **kw: Any) -> dict[str, Any]:
    """fetch_job(wait=true) in every client at once; their structured results."""
    results: dict[str, Any] = {}

    async def wait_in(name: str, client: Any) -> None:
        result = await client.call_tool("fetch_job", {"job_id": job_id, "wait": True},
                                        **kw.get(name, {}))
        assert not result.is_error, result.content
        results[name] = result.structured_content

    async with anyio.create_task_group() as tg:
        for name, client in clients.items():
            tg.start_soon(wait_in, name, client)
    return results


# -- the async GPT route: one collector, on its own route ----------------------------------


async def test_a_gpt_image_2_job_watched_by_two_servers_is_downloaded_once(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.options.job_seconds = 2.0
    env = peer_env(emulator, tmp_path)
    async with peer(env, tmp_path / "a.log") as a, peer(env, tmp_path / "b.log") as b:
        submitted = await a.call_tool("gpt4o_image", {"prompt": "draw a twice-watched kite",
                                                      "wait": False, **GPT2})
        job_id = submitted.structured_content["job_id"]
        results = await wait_in_both({"a": a, "b": b}, job_id)
        later = {name: (await c.call_tool("fetch_job", {"job_id": job_id})).structured_content
                 for name, c in (("a", a), ("b", b))}
    everything = [*results.values(), *later.values()]
    assert all(r["status"] == "completed" and r["model"] == "gpt-image-2" for r in everything)
    paths = {r["images"][0]["path"] for r in everything}
    assert len(paths) == 1
    with Image.open(paths.pop()) as im:
        assert im.size == (1536, 864)
    assert len(emulator.api_requests("download")) == 1
    assert emulator.api_requests("E5") == []  # the row's kind says which route to ask
    assert set(fetched_ids(emulator, "A2")) == {job_id}
    database = tmp_path / "db.sqlite3"
    assert rows(database, "SELECT COUNT(*) FROM images") == [(1,)]
    assert rows(database, "SELECT kind, collector_id FROM jobs") == [("gpt", None)]
    assert_store_whole(tmp_path)


async def test_a_killed_owners_jobs_are_taken_over_each_on_its_own_route(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.options.job_seconds = 3.0
    env = peer_env(emulator, tmp_path)
    database = tmp_path / "db.sqlite3"
    async with peer(env, tmp_path / "b.log") as b:
        with doomed_server(env) as a:
            ids = {}
            for name, extra in (("gpt", GPT2), ("4o", {})):
                submitted = a.request("tools/call", {"name": "gpt4o_image", "arguments": {
                    "prompt": f"draw an orphaned {name} boat", "wait": False, **extra}})
                ids[name] = submitted["result"]["structuredContent"]["job_id"]
            await anyio.sleep(1.3)  # A alive: a whole lease later, B has touched nothing
            before = rows(database, "SELECT kind, status, collector_id FROM jobs ORDER BY kind")
            asked_before = len(emulator.api_requests("A2")) + len(emulator.api_requests("E5"))
            a.proc.send_signal(signal.SIGKILL)
            a.proc.wait(10)
            killed_at = time.monotonic()
            await until(lambda: rows(database, "SELECT COUNT(*) FROM jobs"
                                               " WHERE image_ids != '[]'") == [(2,)], 30)
            taken_over = time.monotonic() - killed_at
            fetched = {name: (await b.call_tool("fetch_job", {"job_id": job_id}))
                       .structured_content for name, job_id in ids.items()}
    assert before == [("4o", "SUBMITTED", None), ("gpt", "SUBMITTED", None)]
    assert asked_before == 0  # wait=false: nobody polls a job its live owner holds
    assert taken_over > 0.5, taken_over  # only after A's lease ran out
    assert set(fetched_ids(emulator, "A2")) == {ids["gpt"]}  # each job on its own route
    assert set(fetched_ids(emulator, "E5")) == {ids["4o"]}
    assert fetched["gpt"]["status"] == "completed" and fetched["gpt"]["model"] == "gpt-image-2"
    assert fetched["4o"]["status"] == "completed" and fetched["4o"]["model"] == "gpt-4o-image"
    with Image.open(fetched["gpt"]["images"][0]["path"]) as im:
        assert im.size == (1536, 864)
    assert len(emulator.api_requests("download")) == 2
    assert rows(database, "SELECT kind, status FROM jobs ORDER BY kind") == [
        ("4o", "SUCCESS"), ("gpt", "SUCCESS")]
    assert_store_whole(tmp_path)


async def test_an_id_no_server_has_seen_is_found_on_either_route_by_two_servers(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Both servers, at once, asked for a GPT-route job submitted elsewhere: each tries
    the 4o route first (unknown there), finds it on the GPT route, and one downloads it."""
    emulator.options.job_seconds = 1.5
    env = peer_env(emulator, tmp_path)
    with httpx2.Client(base_url=str(emulator.base_url), headers={"TT-API-KEY": "x"}) as http:
        job_id = http.post("/openai/gpt/generations", json={
            "prompt": "draw a moth seen nowhere", **GPT2}).json()["data"]["job_id"]
    emulator.clear_log()
    async with peer(env, tmp_path / "a.log") as a, peer(env, tmp_path / "b.log") as b:
        results = await wait_in_both({"a": a, "b": b}, job_id)
        unknown_tries = len(emulator.api_requests("E5"))
        again = (await b.call_tool("fetch_job", {"job_id": job_id})).structured_content
    assert all(r["status"] == "completed" for r in results.values()), results
    # The GPT route's job object names no model: never claimed to be gpt-4o-image.
    assert {r["model"] for r in [*results.values(), again]} == {"unknown (async GPT route)"}
    assert results["a"]["images"][0]["path"] == results["b"]["images"][0]["path"]
    assert again["images"] == results["a"]["images"]
    assert 1 <= unknown_tries <= 2
    assert {r.status for r in emulator.api_requests("E5")} == {404}
    assert len(emulator.api_requests("E5")) == unknown_tries  # once known, never again
    assert len(emulator.api_requests("download")) == 1
    assert rows(tmp_path / "db.sqlite3", "SELECT kind, status FROM jobs") == [("gpt", "SUCCESS")]
    assert rows(tmp_path / "db.sqlite3", "SELECT model FROM images") == [
        ("unknown (async GPT route)",)]
    assert_store_whole(tmp_path)


# -- streamed partial images awaited by a second server ------------------------------------


async def test_a_streamed_call_awaited_by_another_server_returns_the_owners_result(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.options.stream_seconds = 2.0
    out = tmp_path / "out"
    # The database in the output folder: its partials/ sit beside the images, and doctor
    # must still count only results.
    env = peer_env(emulator, tmp_path, TTAPI_DATABASE_PATH=str(out / "store.sqlite3"),
                   TTAPI_PROGRESS_INTERVAL_SECONDS="0.2")
    args = {"prompt": "a streamed heron", "model": "gpt-image-1", "quality": "low",
            "size": "1024x1024", "n": 2, "partial_images": 2, "preview": "none",
            "wait": False}
    notes = Notes()
    async with peer(env, tmp_path / "a.log") as a, peer(env, tmp_path / "b.log") as b:
        started = await a.call_tool("generate_image", args)
        job_id = started.structured_content["job_id"]
        results = await wait_in_both({"a": a, "b": b}, job_id,
                                     b={"progress_callback": notes})
        seen_in_b = await read_json(b, f"ttapi://jobs/{job_id}")
        listed = [str(r.uri) for r in (await b.list_resources()).resources]
        partial = await b.read_resource(f"ttapi://partials/{job_id}.1.1")
    doctor = subprocess.run([sys.executable, "-m", "ttapi_mcp", "doctor"], env=env,
                            capture_output=True, text=True, timeout=60, cwd="/")
    owner, other = results["a"], results["b"]
    assert owner["status"] == "completed" and len(owner["images"]) == 2, owner
    assert other == owner
    assert seen_in_b["status"] == "succeeded"
    assert notes.saw("partial 1 of image 1 saved as a preview"), notes.messages
    assert not any("partials" in uri for uri in listed)
    assert partial.contents[0].mime_type == "image/png" and partial.contents[0].blob
    database = out / "store.sqlite3"
    partial_paths = [Path(p) for (p,) in rows(database, "SELECT path FROM partial_images")]
    assert len(partial_paths) == 4 and all(p.is_file() for p in partial_paths)
    assert all(p.parent == out / "partials" for p in partial_paths)
    assert rows(database, "SELECT COUNT(*) FROM images") == [(2,)]
    assert len(emulator.api_requests("E1")) == 1
    report = doctor.stdout
    assert "2 images recorded" in report, report
    for check in ("temporary files", "files w/o rows", "rows w/o files"):
        line = next(line for line in report.splitlines() if check in line)
        assert line.startswith("OK"), report
    assert CANARY_KEY not in report + doctor.stderr
