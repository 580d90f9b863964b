"""The Apps surface seen by clients: with Apps, the page and its tools; without, today's.

Why: a host that renders no Apps must get exactly what it got before (four tools, the same
resources, the same result content); a host that does gets the viewer page and tools
that only read what the model could read anyway.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import CANARY_KEY, make_server_settings, mcp_client
from galleryseed import NEEDLE, seed_store, thumbs_folder
from mcp.client.extension import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID

from ttapi_mcp.emulator import Emulator
from ttapi_mcp.server.apps import VIEWER_URI

pytestmark = pytest.mark.anyio

FOUR = ["generate_image", "edit_image", "gpt4o_image", "fetch_job"]
GPT = {"model": "gpt-image-1", "size": "1024x1024", "quality": "low"}


def apps_client(settings: Any, mode: str = "auto") -> Any:
    return mcp_client(settings, mode, extensions=[
        advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})])


async def test_a_client_without_apps_sees_what_it_saw_before(
    emulator: Emulator, tmp_path: Path, client_mode: str
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path)
    async with mcp_client(settings, client_mode) as client:
        tools = (await client.list_tools()).tools
        resources = (await client.list_resources()).resources
        result = await client.call_tool("generate_image", {"prompt": "plain host", **GPT})
    assert sorted(t.name for t in tools) == sorted(FOUR)
    assert not [r for r in resources if str(r.uri).startswith("ui://")]
    # The result: summary, one link, one thumbnail, the structured result: as before.
    assert [c.type for c in result.content] == ["text", "resource_link", "image"]
    assert result.structured_content["status"] == "completed"
    assert result.meta is None or "ui" not in result.meta


async def test_a_client_with_apps_gets_the_page_and_the_bound_tools(
    emulator: Emulator, tmp_path: Path, client_mode: str
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path)
    async with apps_client(settings, client_mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        read = await client.read_resource(VIEWER_URI)
        listed = [str(r.uri) for r in (await client.list_resources()).resources]
    for name in FOUR:
        assert tools[name].meta == {"ui": {"resourceUri": VIEWER_URI}}, name
    for name in ("app_images", "app_gallery", "app_partials"):
        assert tools[name].meta["ui"]["visibility"] == ["app"], name  # hidden from the model
        assert tools[name].annotations.read_only_hint
    assert tools["show_gallery"].meta["ui"]["visibility"] == ["model", "app"]
    assert VIEWER_URI in listed
    [page] = read.contents
    assert page.mime_type == APP_MIME_TYPE
    html = page.text
    assert CANARY_KEY not in html
    assert "default-src 'none'" in html and "/*JS*/" not in html and "/*CSS*/" not in html
    # Self-contained: nothing loaded from anywhere.
    for outside in ("http://", "https://", "//cdn", "src=\"/", "@import"):
        assert outside not in html.replace("http-equiv", ""), outside


async def test_app_images_gives_large_and_full_images_of_the_store(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path)
    async with apps_client(settings) as client:
        made = await client.call_tool("generate_image", {"prompt": "two boats", "n": 2, **GPT})
        ids = [i["id"] for i in made.structured_content["images"]]
        large = await client.call_tool("app_images", {"image_ids": ids})
        full = await client.call_tool("app_images", {"image_ids": ids[:1], "size": "full"})
        missing = await client.call_tool("app_images", {"image_ids": ["nope"]})
    assert [c.type for c in large.content] == ["image", "image"]
    assert all(len(c.data) <= 300_000 for c in large.content)
    assert [i["prompt"] for i in large.structured_content["images"]] == ["two boats"] * 2
    assert full.content[0].mime_type == "image/png"
    assert len(full.content[0].data) > len(large.content[0].data)
    assert missing.is_error and "no image with id 'nope'" in missing.content[0].text
    # Thumbnails are cached beside the store, never in the output folder.
    cached = list(thumbs_folder(settings).rglob("*-1024.*"))
    assert len(cached) == 2
    assert not [p for p in settings.output_dir.rglob("*") if "thumbs" in p.parts]


async def test_gallery_pages_filters_and_searches(emulator: Emulator, tmp_path: Path) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path)
    await seed_store(settings, 250)
    async with apps_client(settings) as client:
        first = (await client.call_tool("app_gallery", {"limit": 100})).structured_content
        second = (await client.call_tool("app_gallery", {
            "limit": 100, "cursor": first["next_cursor"]})).structured_content
        found = (await client.call_tool("app_gallery", {"query": "zebra newspaper"}))
        model = (await client.call_tool("app_gallery", {"model": "dall-e-3", "limit": 200}))
        job = (await client.call_tool("app_gallery", {"job_id": "job-3"})).structured_content
        day = (await client.call_tool("app_gallery", {
            "since": "2023-11-14", "until": "2023-11-14"})).structured_content
        later = (await client.call_tool("app_gallery", {"since": "2023-11-15"}))
        shown = await client.call_tool("show_gallery", {})
    assert first["total"] == 250 and len(first["items"]) == 100
    assert first["items"][0]["prompt"] == "lighthouse study number 249"  # newest first
    assert "dall-e-3" in first["models"]
    ids = [i["id"] for i in first["items"] + second["items"]]
    assert len(set(ids)) == 200 and ids == sorted(ids, reverse=True)
    assert all(i["thumb"].startswith("data:image/") for i in first["items"])
    assert [i["prompt"] for i in found.structured_content["items"]] == [NEEDLE]
    assert {i["model"] for i in model.structured_content["items"]} == {"dall-e-3"}
    assert model.structured_content["total"] == 83
    assert sorted(i["id"] for i in job["items"]) == [f"seed{n:07d}" for n in range(12, 16)]
    assert day["total"] == 250  # seeded from 2023-11-14 22:13:20 UTC, one a second
    assert later.structured_content["total"] == 0
    for page in (first, second, found.structured_content, job):
        assert CANARY_KEY not in json.dumps(page)
    assert "250 images" in shown.content[0].text
    assert shown.structured_content == {"gallery": True, "total": 250}


@pytest.mark.parametrize(("args", "message"), [
    ({"cursor": "!!"}, "cursor is not one this gallery gave out"),
    ({"since": "yesterday"}, "since must be a date YYYY-MM-DD"),
    ({"until": "2026-13-01"}, "until must be a date YYYY-MM-DD"),
    ({"limit": 0}, "limit"),
    ({"tool": "delete_everything"}, "tool"),
])
async def test_bad_gallery_arguments_are_explained(
    emulator: Emulator, tmp_path: Path, args: dict[str, Any], message: str
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path)
    async with apps_client(settings) as client:
        result = await client.call_tool("app_gallery", args)
    assert result.is_error
    assert message in result.content[0].text
    assert CANARY_KEY not in result.content[0].text
    assert emulator.api_requests() == []


async def test_search_text_is_never_read_as_fts_syntax(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path)
    await seed_store(settings, 20)
    async with apps_client(settings) as client:
        for text in ['"', "NEAR(", "a OR b*", "-zebra", "zebra AND", "^*", "::"]:
            result = await client.call_tool("app_gallery", {"query": text})
            assert not result.is_error, (text, result.content)
        hit = await client.call_tool("app_gallery", {"query": "ZEBRA-newspaper!"})
    assert [i["prompt"] for i in hit.structured_content["items"]] == [NEEDLE]


async def test_the_tool_filter_follows_the_request_that_made_the_image(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path)
    async with apps_client(settings) as client:
        made = await client.call_tool("generate_image", {"prompt": "a kite", **GPT})
        uri = made.structured_content["images"][0]["uri"]
        await client.call_tool("edit_image", {"prompt": "two kites", "images": [uri], **GPT})
        edits = (await client.call_tool("app_gallery", {"tool": "edit_image"}))
        gens = (await client.call_tool("app_gallery", {"tool": "generate_image"}))
    assert [i["prompt"] for i in edits.structured_content["items"]] == ["two kites"]
    assert [i["prompt"] for i in gens.structured_content["items"]] == ["a kite"]
    assert edits.structured_content["items"][0]["tool"] == "edit_image"


async def test_a_gallery_page_decodes_originals_only_once(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ttapi_mcp import thumbcache

    made: list[str] = []
    real = thumbcache.thumbnail_sync

    def counting(source: Any, *args: Any) -> Any:
        made.append(str(source))
        return real(source, *args)

    monkeypatch.setattr(thumbcache, "thumbnail_sync", counting)
    settings = make_server_settings(emulator.base_url, tmp_path)
    await seed_store(settings, 30)
    async with apps_client(settings) as client:
        first = await client.call_tool("app_gallery", {"limit": 20})
        assert len(made) == 20
        again = await client.call_tool("app_gallery", {"limit": 20})
    assert len(made) == 20  # the second visit read the cache only
    assert first.structured_content["items"] == again.structured_content["items"]
    assert len(list(thumbs_folder(settings).rglob("*-256.*"))) == 20


async def test_results_do_not_depend_on_whether_the_client_renders_apps(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path)
    args = {"prompt": "the same either way", "n": 3, "dedupe": False, **GPT}
    async with mcp_client(settings) as plain:
        without = await plain.call_tool("generate_image", args)
    async with apps_client(settings) as apps:
        with_apps = await apps.call_tool("generate_image", args)

    def shape(result: Any) -> list[Any]:
        return [(c.type, getattr(c, "mime_type", None)) for c in result.content]

    assert shape(without) == shape(with_apps) == [
        ("text", None), *[("resource_link", "image/png")] * 3, ("image", "image/jpeg")]
    assert without.structured_content.keys() == with_apps.structured_content.keys()


async def test_app_partials_gives_the_newest_partial_of_each_image_once(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.options.stream_seconds = 0.05
    settings = make_server_settings(emulator.base_url, tmp_path)
    async with apps_client(settings) as client:
        made = await client.call_tool("generate_image", {
            "prompt": "streamed boats", "n": 2, "partial_images": 2, **GPT})
        job_id = made.structured_content["job_id"]
        first = await client.call_tool("app_partials", {"job_id": job_id})
        listed = first.structured_content["partials"]
        again = await client.call_tool("app_partials", {
            "job_id": job_id, "have": [listed[0]["partial_id"]]})
        none = await client.call_tool("app_partials", {"job_id": "local-nothing"})
        read = await client.read_resource(listed[1]["uri"])
        bad = await client.call_tool("app_partials", {"job_id": ""})
    assert [(p["image_index"], p["partial_index"], p["sent"]) for p in listed] == [
        (0, 1, True), (1, 1, True)]
    assert [c.type for c in first.content] == ["text", "image", "image"]
    assert all(len(c.data) <= 120_000 for c in first.content if c.type == "image")
    assert [p["sent"] for p in again.structured_content["partials"]] == [False, True]
    assert [c.type for c in again.content] == ["text", "image"]
    assert none.structured_content["partials"] == [] and not none.is_error
    assert read.contents[0].blob
    assert bad.is_error and "job_id" in bad.content[0].text
    assert len(emulator.api_requests("E1")) == 1  # reading partials sends nothing
