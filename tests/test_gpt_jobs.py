"""The async GPT route (§11.6) through gpt4o_image and fetch_job, against the emulator.

Jobs on this route get what 4o jobs get: recorded at submit, progress, pending +
fetch_job, restart recovery, one download; and the job row's kind tells fetch_job which
route to ask.
"""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from conftest import CANARY_KEY, make_server_settings, mcp_client
from PIL import Image

from ttapi_mcp.emulator import Emulator

pytestmark = pytest.mark.anyio
A1, A2 = "/openai/gpt/generations", "/openai/gpt/fetch"


def _kind(settings: Any, job_id: str) -> str:
    with sqlite3.connect(settings.store_path) as db:
        return str(db.execute("SELECT kind FROM jobs WHERE job_id = ?", (job_id,)).fetchone()[0])


@pytest.mark.parametrize(("args", "dims"), [
    ({"model": "gpt-image-2", "aspect_ratio": "16:9"}, (1536, 864)),
    ({"model": "gpt-image-2-plus", "size": "3840x2160"}, (3840, 2160)),
    ({"model": "gpt-image-1.5"}, (1024, 1024)),
])
async def test_gpt_route_job_completes_while_waiting(
    server_settings: Any, emulator: Emulator, client_mode: str,
    args: dict[str, Any], dims: tuple[int, int],
) -> None:
    emulator.options.job_seconds = 0.3
    notes: list[str | None] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        notes.append(message)

    async with mcp_client(server_settings, client_mode) as client:
        result = await client.call_tool(
            "gpt4o_image", {"prompt": "draw a harbour at dawn", **args},
            progress_callback=on_progress)
    assert not result.is_error, result.content
    data = result.structured_content
    assert data["status"] == "completed" and data["model"] == args["model"]
    (image,) = data["images"]
    with Image.open(image["path"]) as im:
        assert im.size == dims
    (submit,) = emulator.api_requests("A1")
    assert submit.json == {"prompt": "draw a harbour at dawn", **args}
    assert emulator.api_requests("E4") == [] and emulator.api_requests("E5") == []
    assert len(emulator.api_requests("A2")) >= 1
    assert notes
    assert _kind(server_settings, data["job_id"]) == "gpt"


async def test_gpt_job_pending_then_fetch_job_uses_its_route_and_saves_once(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.options.job_seconds = 0.5
    settings = make_server_settings(emulator.base_url, tmp_path, wait_budget_seconds=0.1)
    async with mcp_client(settings) as client:
        first = await client.call_tool("gpt4o_image", {"prompt": "draw a kite",
                                                       "model": "gpt-image-2"})
        assert first.structured_content["status"] == "pending", first.content
        job_id = first.structured_content["job_id"]
        for _ in range(100):
            done = await client.call_tool("fetch_job", {"job_id": job_id, "wait": True})
            assert not done.is_error, done.content
            if done.structured_content["status"] != "pending":
                break
        again = await client.call_tool("fetch_job", {"job_id": job_id})
    assert done.structured_content["status"] == "completed"
    assert done.structured_content["model"] == "gpt-image-2"
    assert again.structured_content["images"] == done.structured_content["images"]
    assert len(emulator.api_requests("download")) == 1
    assert emulator.api_requests("E5") == []


async def test_fetch_job_finds_a_gpt_job_it_has_never_seen(
    server_settings: Any, emulator: Emulator
) -> None:
    emulator.options.job_seconds = 0.0
    with httpx2.Client(base_url=str(emulator.base_url), headers={"TT-API-KEY": "x"}) as http:
        job_id = http.post(A1, json={"prompt": "draw a moth"}).json()["data"]["job_id"]
    emulator.clear_log()
    async with mcp_client(server_settings) as client:
        result = await client.call_tool("fetch_job", {"job_id": job_id, "wait": True})
    assert not result.is_error, result.content
    assert result.structured_content["status"] == "completed"
    assert [r.status for r in emulator.api_requests("E5")] == [404]  # tried first, unknown
    assert emulator.api_requests("A2")
    assert _kind(server_settings, job_id) == "gpt"


async def test_gpt_job_is_resumed_on_its_route_after_a_restart(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.options.job_seconds = 0.5
    settings = make_server_settings(emulator.base_url, tmp_path)
    async with mcp_client(settings) as client:
        first = await client.call_tool("gpt4o_image", {
            "prompt": "draw a lighthouse", "model": "gpt-image-2", "aspect_ratio": "9:16",
            "wait": False})
    job_id = first.structured_content["job_id"]
    async with mcp_client(settings) as client:
        await client.list_tools()
        await client.read_resource("ttapi://jobs")  # the services (and recovery) have started
        with anyio.fail_after(15):
            while True:
                with sqlite3.connect(settings.store_path) as db:
                    row = db.execute("SELECT status, image_ids FROM jobs WHERE job_id = ?",
                                     (job_id,)).fetchone()
                if row[0] == "SUCCESS" and json.loads(row[1]):
                    break
                await anyio.sleep(0.05)
        result = await client.call_tool("fetch_job", {"job_id": job_id})
    (image,) = result.structured_content["images"]
    with Image.open(image["path"]) as im:
        assert im.size == (864, 1536)
    assert emulator.api_requests("E5") == []


@pytest.mark.parametrize(("args", "words"), [
    ({"model": "gpt-image-2-plus", "size": "4000x2000"},
     ("size '4000x2000'", "long side may be at most 3840", "nearest valid size is '3840x2000'")),
    ({"model": "gpt-image-2-plus", "size": "800x800"}, ("655,360", "'816x816'")),
    ({"model": "gpt-image-2", "size": "1024x1024"},
     ("size is only for model 'gpt-image-2-plus'",)),
    ({"aspect_ratio": "16:9"}, ("aspect_ratio is only for model 'gpt-image-2'",)),
    ({"model": "gpt-image-1", "aspect_ratio": "1:1", "size": "1024x1024",
      "refer_images": ["file:///etc/passwd"]},
     ("aspect_ratio is only", "size is only", "refer_images[0]", "nothing was billed")),
])
async def test_job_rules_are_refused_at_once_before_any_request(
    server_settings: Any, emulator: Emulator, client_mode: str,
    args: dict[str, Any], words: tuple[str, ...],
) -> None:
    async with mcp_client(server_settings, client_mode) as client:
        result = await client.call_tool("gpt4o_image", {"prompt": "draw", **args})
    assert result.is_error
    text = result.content[0].text
    for word in words:
        assert word in text, text
    assert CANARY_KEY not in text
    assert emulator.api_requests() == []


def test_emulator_serves_the_route_with_its_rules(emulator: Emulator) -> None:
    emulator.options.job_seconds = 0.0
    with httpx2.Client(base_url=str(emulator.base_url), headers={"TT-API-KEY": "k"}) as http:
        wrong = http.post(A1, json={"prompt": "p", "model": "gpt-image-1", "size": "2048x1152"})
        assert wrong.status_code == 400 and "size" in wrong.json()["message"]
        assert wrong.json()["status"] == "FAILED"
        ratio = http.post(A1, json={"prompt": "p", "model": "gpt-image-1",
                                    "aspect_ratio": "1:1"})
        assert ratio.status_code == 400 and "aspect_ratio" in ratio.json()["message"]
        mini = http.post(A1, json={"prompt": "p", "model": "gpt-image-1-mini"})
        assert mini.status_code == 400
        pasted = http.post(A1, json={"prompt": "p", "mode": "gpt-image-2"})  # §11.9
        assert pasted.status_code == 400 and "mode" in pasted.json()["message"]
        # TTAPI silently adjusts an invalid size; the image has the adjusted size.
        job_id = http.post(A1, json={"prompt": "p", "model": "gpt-image-2-plus",
                                     "size": "5000x1000"}).json()["data"]["job_id"]
        job = http.get(A2, params={"jobId": job_id}).json()
        assert job["status"] == "SUCCESS" and job["jobId"] == job_id
        with Image.open(io.BytesIO(http.get(job["data"]["imageUrl"]).content)) as im:
            w, h = im.size
        assert (w, h) != (5000, 1000) and w % 16 == 0 and h % 16 == 0
        assert max(w, h) <= 3840 and max(w, h) <= 3 * min(w, h)
        assert 655_360 <= w * h <= 8_294_400
        # Each route fetches only its own jobs.
        assert http.get("/openai/4o-image/fetch", params={"jobId": job_id}).status_code == 404
        four_o = http.post("/openai/4o-image/generations", json={"prompt": "draw"})
        other = four_o.json()["data"]["job_id"]
        assert http.post(A2, json={"jobId": other}).status_code == 404


async def test_a_hook_completes_a_gpt_route_job_long_before_polling_would(
    emulator: Emulator, tmp_path: Path
) -> None:
    from conftest import serve_http
    from mcp import Client

    emulator.options.job_seconds = 0.3
    settings = make_server_settings(emulator.base_url, tmp_path, poll_first_delay=60,
                                    poll_interval=60, poll_max_interval=60)
    with serve_http(settings, public=True) as origin:
        async with Client(f"{origin}/mcp") as client:
            with anyio.fail_after(20):
                waited = await client.call_tool("gpt4o_image", {
                    "prompt": "draw a hooked heron", "model": "gpt-image-2",
                    "aspect_ratio": "4:3"})
    assert waited.structured_content["status"] == "completed", waited.content
    (submit,) = emulator.api_requests("A1")
    assert submit.json["hookUrl"].startswith(f"{origin}/hooks/4o/")
    (delivery,) = emulator.hook_deliveries
    assert delivery.status == 200
    assert emulator.api_requests("E5") == []
