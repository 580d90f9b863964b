"""The gallery app in headless Chromium over a store of 10,000 images.

Checked on the page: the first pages load as the person scrolls (keyset pages, each
tile's thumbnail decoded), the count of the whole store is shown, prompt search finds
the one matching image, a tile opens the viewer and a job's images show together.
"""

from __future__ import annotations

from typing import Any

import pytest
from apphost import app_host, needs_chromium
from conftest import serve_http
from galleryseed import NEEDLE, seed_store

from ttapi_mcp.emulator import Emulator

pytestmark = [pytest.mark.anyio, needs_chromium]

STORE = 10_000
PAGE = 60


async def _tiles(host: Any) -> int:
    return int(await host.app.locator("#grid .tile").count())


async def _wait_tiles(host: Any, count: int) -> None:
    for _ in range(300):
        if await _tiles(host) >= count:
            shown = "#grid .tile img[src]"
            assert await host.decodable_images(shown) == await host.app.locator(shown).count()
            return
        await host.page.wait_for_timeout(50)
    raise AssertionError(f"{count} decoded tiles expected, {await _tiles(host)} shown")


async def _wait_exactly(host: Any, count: int) -> None:
    for _ in range(300):
        if await _tiles(host) == count:
            return
        await host.page.wait_for_timeout(50)
    raise AssertionError(f"{count} tiles expected, {await _tiles(host)} shown")


async def test_gallery_scrolls_searches_and_opens_the_viewer(
    emulator: Emulator, server_settings: Any
) -> None:
    await seed_store(server_settings, STORE)
    with serve_http(server_settings) as origin:
        async with app_host(f"{origin}/mcp") as host:
            shown = await host.client.call_tool("show_gallery", {})
            await host.open("show_gallery")
            await host.deliver({}, shown)
            await _wait_tiles(host, PAGE)
            status = await host.app.locator("#g-status").inner_text()
            assert f"of {STORE}" in status
            first = await host.app.locator("#grid .tile").first.get_attribute("title")
            assert first == f"lighthouse study number {STORE - 1}"  # newest first
            await host.page.wait_for_timeout(300)
            assert await host.decoded_images("#grid .tile img") >= 12  # those in view
            await host.screenshot("gallery")
            # Scrolling to the end of the grid loads the next pages, in order.
            for pages in (2, 3, 4):
                await host.app.locator("#sentinel").scroll_into_view_if_needed()
                await _wait_tiles(host, PAGE * pages)
            titles = await host.app.locator("#grid .tile").evaluate_all(
                "els => els.map(e => e.title)")
            assert titles == [f"lighthouse study number {STORE - 1 - i}"
                              for i in range(PAGE * 4)]
            pages_asked = [c for c in await host.calls()
                           if c["params"]["name"] == "app_gallery"]
            assert len(pages_asked) == 4
            assert all("cursor" in c["params"]["arguments"] for c in pages_asked[1:])

            # However far one scrolls, at most 360 thumbnails stay in the page; the ones
            # far above come back from the server's cache when scrolled to again.
            for pages in (5, 6, 7, 8):
                await host.app.locator("#sentinel").scroll_into_view_if_needed()
                await _wait_tiles(host, PAGE * pages)
            kept = await host.app.locator("#grid .tile img[src]").count()
            assert 0 < kept <= 360
            assert await host.app.locator("#grid .tile[data-dropped]").count() >= 120
            top = host.app.locator("#grid .tile").first
            assert await top.get_attribute("data-dropped") == "1"
            await top.scroll_into_view_if_needed()
            for _ in range(200):
                if await top.get_attribute("data-dropped") is None:
                    break
                await host.page.wait_for_timeout(50)
            assert await top.get_attribute("data-dropped") is None
            assert await host.decodable_images("#grid .tile:first-child img") == 1
            refills = [c for c in await host.calls() if c["params"]["name"] == "app_images"]
            assert refills and all(c["params"]["arguments"]["size"] == "thumb"
                                   and len(c["params"]["arguments"]["image_ids"]) <= 16
                                   for c in refills)

            # Search by words of the prompt.
            await host.app.locator("#q").fill("zebra newspaper")
            await host.app.locator("#filter").click()
            await _wait_exactly(host, 1)
            await _wait_tiles(host, 1)
            tile = host.app.locator("#grid .tile").first
            assert await tile.get_attribute("title") == NEEDLE
            assert "of 1" in await host.app.locator("#g-status").inner_text()

            # A tile opens the viewer; the viewer shows the job's images together.
            await tile.click()
            await host.app.locator("#viewer:not([hidden]) #images figure").wait_for()
            assert NEEDLE in await host.app.locator("#meta").inner_text()
            for _ in range(100):
                if await host.decoded_images("#images figure img") == 1:
                    break
                await host.page.wait_for_timeout(50)
            assert await host.decoded_images("#images figure img") == 1
            await host.app.locator("#job-images").click()
            await _wait_exactly(host, 4)
            job_call = [c for c in await host.calls()
                        if c["params"]["name"] == "app_gallery"][-1]
            assert job_call["params"]["arguments"]["job_id"] == f"job-{(STORE // 2) // 4}"
    assert emulator.api_requests() == []  # browsing never reaches TTAPI


async def test_gallery_of_generated_images_with_the_tool_filter(
    emulator: Emulator, server_settings: Any
) -> None:
    prompts = ["a lighthouse at dusk, oil painting", "a fox in the snow, woodcut",
               "a paper boat on a pond", "a red bicycle against a blue wall"]
    with serve_http(server_settings) as origin:
        async with app_host(f"{origin}/mcp") as host:
            for prompt in prompts:
                made = await host.client.call_tool("generate_image", {
                    "prompt": prompt, "n": 2, "model": "gpt-image-1", "size": "1024x1024",
                    "quality": "low"})
                assert not made.is_error
            uri = made.structured_content["images"][0]["uri"]
            edited = await host.client.call_tool("edit_image", {
                "prompt": "the same bicycle at night", "images": [uri],
                "model": "gpt-image-1", "size": "1024x1024", "quality": "low"})
            assert not edited.is_error
            shown = await host.client.call_tool("show_gallery", {})
            await host.open("show_gallery")
            await host.deliver({}, shown)
            await _wait_exactly(host, 9)
            await _wait_tiles(host, 9)
            await host.page.wait_for_timeout(300)
            await host.screenshot("gallery-generated")
            await host.app.locator("#f-tool").select_option("edit_image")
            await _wait_exactly(host, 1)
            assert await host.app.locator("#grid .tile").first.get_attribute("title") == (
                "the same bicycle at night")
            await host.app.locator("#f-tool").select_option("generate_image")
            await _wait_exactly(host, 8)
