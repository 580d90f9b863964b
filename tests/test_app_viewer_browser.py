"""The viewer app in headless Chromium, hosted by a test page, against the real server.

What is checked on the page: every image of a result rendered and decoded, the metadata
shown, and the actions making the right tool calls (a variation is one new upstream
request; "Edit" prefills edit_image with the image as its first input; a pending job
turns into the viewer once it completes).
"""

from __future__ import annotations

from typing import Any

import pytest
from apphost import app_host, needs_chromium
from conftest import serve_http

from ttapi_mcp.emulator import Emulator

pytestmark = [pytest.mark.anyio, needs_chromium]

ARGS = {"prompt": "a red lighthouse on a cliff, watercolour", "model": "gpt-image-1",
        "n": 3, "size": "1024x1024", "quality": "low"}


async def _wait_images(host: Any, count: int) -> None:
    await host.app.locator("#images figure img").nth(count - 1).wait_for()
    for _ in range(200):
        if await host.decoded_images("#images figure img") >= count:
            return
        await host.page.wait_for_timeout(50)
    raise AssertionError(f"fewer than {count} images decoded")


async def test_viewer_shows_every_image_with_its_metadata(
    emulator: Emulator, server_settings: Any
) -> None:
    with serve_http(server_settings) as origin:
        async with app_host(f"{origin}/mcp") as host:
            result = await host.client.call_tool("generate_image", ARGS)
            assert not result.is_error
            await host.open("generate_image")
            await host.deliver(ARGS, result)
            await _wait_images(host, 3)
            assert await host.app.locator("#images figure").count() == 3
            meta = await host.app.locator("#meta").inner_text()
            for text in (ARGS["prompt"], "gpt-image-1", "1024x1024", "low", "completed"):
                assert text in meta, text
            paths = await host.app.locator("#images input.path").evaluate_all(
                "els => els.map(e => e.value)")
            assert paths == [i["path"] for i in result.structured_content["images"]]
            labels = await host.app.locator("#images .label").all_inner_texts()
            assert labels == ["Image 0", "Image 1", "Image 2"]
            await host.page.wait_for_timeout(300)
            shot = await host.screenshot("viewer")
            assert shot.stat().st_size > 10_000
            calls = await host.calls()
            ids = [i["id"] for i in result.structured_content["images"]]
            assert sorted(c["params"]["arguments"]["image_ids"][0] for c in calls) == sorted(ids)
            assert {c["params"]["name"] for c in calls} == {"app_images"}
            # Full resolution on click: the saved file itself, in the lightbox.
            await host.app.locator("#images figure img").first.click()
            await host.app.locator("#lightbox:not([hidden]) #full").wait_for()
            width = await host.app.locator("#full").evaluate("e => e.naturalWidth")
            assert width == 1024


async def test_draw_again_is_one_new_billed_request(
    emulator: Emulator, server_settings: Any
) -> None:
    with serve_http(server_settings) as origin:
        async with app_host(f"{origin}/mcp") as host:
            result = await host.client.call_tool("generate_image", ARGS)
            await host.open("generate_image")
            await host.deliver(ARGS, result)
            await _wait_images(host, 3)
            before = len(emulator.api_requests())
            button = host.app.locator("#again")
            assert "separately" in (await host.app.locator("#actions").inner_text())
            await button.click()
            await host.app.locator("#status", has_text="3 images").wait_for()
            await _wait_images(host, 3)
            assert len(emulator.api_requests()) == before + 1
            again = [c for c in await host.calls() if c["params"]["name"] == "generate_image"]
            assert len(again) == 1
            assert again[0]["params"]["arguments"] == {**ARGS, "dedupe": False,
                                                       "preview": "none"}
            new_paths = await host.app.locator("#images input.path").evaluate_all(
                "els => els.map(e => e.value)")
            old_paths = [i["path"] for i in result.structured_content["images"]]
            assert not set(new_paths) & set(old_paths)


async def test_edit_prefills_edit_image_with_the_chosen_image(
    emulator: Emulator, server_settings: Any
) -> None:
    with serve_http(server_settings) as origin:
        async with app_host(f"{origin}/mcp") as host:
            result = await host.client.call_tool("generate_image", ARGS)
            await host.open("generate_image")
            await host.deliver(ARGS, result)
            await _wait_images(host, 3)
            second = result.structured_content["images"][1]
            await host.app.locator("#images figure button.edit").nth(1).click()
            assert await host.app.locator("#edit-images").input_value() == second["uri"]
            await host.app.locator("#edit-prompt").fill("make the sky stormy")
            before = len(emulator.api_requests("E2"))
            await host.app.locator("#edit-run").click()
            await host.app.locator("#status", has_text="1 image").wait_for()
            await _wait_images(host, 1)
            assert len(emulator.api_requests("E2")) == before + 1
            edit = [c for c in await host.calls() if c["params"]["name"] == "edit_image"]
            assert edit[0]["params"]["arguments"]["images"] == [second["uri"]]
            assert edit[0]["params"]["arguments"]["model"] == "gpt-image-1"


async def test_a_pending_job_turns_into_the_viewer(
    emulator: Emulator, server_settings: Any
) -> None:
    emulator.options.job_seconds = 2.5
    args = {"prompt": "draw a paper boat on a pond", "wait": False}
    with serve_http(server_settings) as origin:
        async with app_host(f"{origin}/mcp") as host:
            result = await host.client.call_tool("gpt4o_image", args)
            assert result.structured_content["status"] == "pending"
            await host.open("gpt4o_image")
            await host.deliver(args, result)
            await host.app.locator("#progress:not([hidden])").wait_for()
            assert "running" in await host.app.locator("#status").inner_text()
            await host.page.wait_for_timeout(300)
            await host.screenshot("viewer-pending")
            await host.app.locator("#status", has_text="1 image").wait_for(timeout=30000)
            await _wait_images(host, 1)
            names = [c["params"]["name"] for c in await host.calls()]
            assert "fetch_job" in names and names[-1] == "app_images"
            assert await host.app.locator("#progress").is_hidden()


async def test_a_fetch_job_result_shows_the_prompt_from_the_store(
    emulator: Emulator, server_settings: Any
) -> None:
    with serve_http(server_settings) as origin:
        async with app_host(f"{origin}/mcp") as host:
            pending = await host.client.call_tool("gpt4o_image", {
                "prompt": "draw a kite over the dunes", "wait": False})
            args = {"job_id": pending.structured_content["job_id"], "wait": True}
            done = await host.client.call_tool("fetch_job", args)
            assert done.structured_content["status"] == "completed"
            await host.open("fetch_job")
            await host.deliver(args, done)
            await _wait_images(host, 1)
            await host.app.locator("#meta", has_text="draw a kite over the dunes").wait_for()
            assert await host.app.locator("#actions").is_hidden()  # nothing to repeat


async def test_a_refused_call_shows_its_explanation(
    emulator: Emulator, server_settings: Any
) -> None:
    args = {"prompt": "x", "model": "dall-e-3", "n": 4}
    with serve_http(server_settings) as origin:
        async with app_host(f"{origin}/mcp") as host:
            refused = await host.client.call_tool("generate_image", args)
            assert refused.is_error
            await host.open("generate_image")
            await host.deliver(args, refused)
            status = host.app.locator("#status.error")
            await status.wait_for()
            assert "dall-e-3" in await status.inner_text()
            assert await host.app.locator("#images figure").count() == 0
            assert await host.calls() == []
    assert emulator.api_requests() == []


async def test_a_pending_streamed_call_shows_its_partial_images_then_its_result(
    emulator: Emulator, server_settings: Any
) -> None:
    import sqlite3

    emulator.options.stream_seconds = 8.0
    args = {"prompt": "a heron in the reeds, streamed", "model": "gpt-image-1", "n": 2,
            "size": "1024x1024", "quality": "low", "partial_images": 2, "wait": False}
    with serve_http(server_settings) as origin:
        async with app_host(f"{origin}/mcp") as host:
            result = await host.client.call_tool("generate_image", args)
            assert result.structured_content["status"] == "pending"
            job_id = result.structured_content["job_id"]
            await host.open("generate_image")
            await host.deliver(args, result)
            await host.app.locator("#partials:not([hidden]) #partial-grid img").first.wait_for()
            for _ in range(200):
                if await host.decoded_images("#partial-grid img") >= 1:
                    break
                await host.page.wait_for_timeout(50)
            else:
                raise AssertionError("no partial image decoded")
            shown = await host.app.locator("#partial-grid figure").evaluate_all(
                "els => els.map(e => e.dataset.partialId)")
            assert "running" in await host.app.locator("#status").inner_text()
            assert await host.app.locator("#images figure").count() == 0
            await host.screenshot("viewer-partials")
            await host.app.locator("#status", has_text="2 images").wait_for(timeout=30000)
            await _wait_images(host, 2)
            assert await host.app.locator("#partials").is_hidden()
            assert await host.app.locator("#partial-grid figure").count() == 0
            calls = [c["params"] for c in await host.calls()
                     if c["params"]["name"] == "app_partials"]
    with sqlite3.connect(server_settings.store_path) as db:
        stored = {r[0] for r in db.execute(
            "SELECT partial_id FROM partial_images WHERE job_id = ?", (job_id,))}
    assert shown and set(shown) <= stored
    assert len(stored) == 4
    assert calls and {c["arguments"]["job_id"] for c in calls} == {job_id}
    # A preview the page shows is named in "have", so it is not sent again.
    assert any(set(c["arguments"]["have"]) & set(shown) for c in calls[1:]), calls
    assert len(emulator.api_requests("E1")) == 1


async def test_draw_again_of_a_gpt_route_job_without_tool_info_repeats_that_job(
    emulator: Emulator, server_settings: Any
) -> None:
    """A host that names no tool: the arguments tell a gpt4o_image job (aspect_ratio exists
    only there), so Draw again submits the job again, not a generate_image call that
    would refuse aspect_ratio as unknown."""
    args = {"prompt": "draw a harbour at dusk", "model": "gpt-image-2", "aspect_ratio": "16:9"}
    with serve_http(server_settings) as origin:
        async with app_host(f"{origin}/mcp") as host:
            result = await host.client.call_tool("gpt4o_image", args)
            assert result.structured_content["status"] == "completed", result.content
            await host.open()
            await host.deliver(args, result)
            await _wait_images(host, 1)
            await host.app.locator("#again").click()
            await host.app.locator("#status", has_text="1 image").wait_for()
            await _wait_images(host, 1)
            again = [c["params"] for c in await host.calls()
                     if c["params"]["name"] != "app_images"]
    assert again == [{"name": "gpt4o_image", "arguments": args}]
    assert len(emulator.api_requests("A1")) == 2
