"""Resources (images, jobs, models) and prompts through a real MCP client."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import mcp_client

from ttapi_mcp.emulator import Emulator
from ttapi_mcp.server import resources

pytestmark = pytest.mark.anyio


async def test_images_are_listed_newest_first_with_pagination_and_read_back(
    server_settings: Any, client_mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resources, "PAGE_SIZE", 2)
    async with mcp_client(server_settings, client_mode) as client:
        made = []
        for i in range(3):
            result = await client.call_tool("generate_image", {
                "prompt": f"tile {i}", "model": "dall-e-2", "size": "256x256",
                "response_format": "b64_json", "preview": "none"})
            made.append(result.structured_content["images"][0])
        first = await client.list_resources()
        assert first.next_cursor is not None
        second = await client.list_resources(cursor=first.next_cursor)
        assert second.next_cursor is None
        templates = await client.list_resource_templates()
        read = await client.read_resource(made[1]["uri"])
        models = await client.read_resource("ttapi://models")
    uris = [str(r.uri) for r in first.resources + second.resources]
    assert uris[:4] == ["ttapi://models", "ttapi://jobs", "ttapi://usage", "ttapi://account"]
    assert uris[4:] == [im["uri"] for im in reversed(made)]
    listed = first.resources[4]
    assert listed.mime_type == "image/png" and listed.size == made[2]["bytes"]
    assert (listed.title, listed.description) == ("tile 2", "dall-e-2, 256x256")
    assert listed.name == Path(made[2]["path"]).name
    assert {t.uri_template for t in templates.resource_templates} == {
        "ttapi://images/{image_id}", "ttapi://jobs/{job_id}", "ttapi://partials/{partial_id}"}
    (content,) = read.contents
    assert content.mime_type == "image/png"
    assert base64.b64decode(content.blob) == Path(made[1]["path"]).read_bytes()
    catalog = json.loads(models.contents[0].text)
    assert set(catalog["models"]) >= {"gpt-image-1", "dall-e-2", "dall-e-3"}


async def test_webp_image_is_read_with_its_own_mime_type(server_settings: Any) -> None:
    async with mcp_client(server_settings) as client:
        result = await client.call_tool("generate_image", {
            "prompt": "webp", "output_format": "webp", "quality": "low", "preview": "none"})
        uri = result.structured_content["images"][0]["uri"]
        read = await client.read_resource(uri)
    assert read.contents[0].mime_type == "image/webp"


async def test_unknown_resources_are_clear_errors(server_settings: Any) -> None:
    from mcp.shared.exceptions import MCPError

    async with mcp_client(server_settings) as client:
        with pytest.raises(MCPError, match="No saved image"):
            await client.read_resource("ttapi://images/doesnotexist")
        with pytest.raises(MCPError, match="No job"):
            await client.read_resource("ttapi://jobs/nope")
        with pytest.raises(MCPError, match="cursor"):
            await client.list_resources(cursor="garbage!")


async def test_job_resource_shows_status_and_image(
    server_settings: Any, emulator: Emulator
) -> None:
    emulator.options.job_seconds = 0.1
    async with mcp_client(server_settings) as client:
        result = await client.call_tool("gpt4o_image", {"prompt": "draw a bell"})
        job_id = result.structured_content["job_id"]
        doc = json.loads((await client.read_resource(f"ttapi://jobs/{job_id}")).contents[0].text)
    assert doc["status"] == "SUCCESS"
    assert doc["image_uris"] == [result.structured_content["images"][0]["uri"]]


PROMPT_ARGS = {
    "poster": ({"subject": "a jazz night", "headline": "Blue Notes"}, "generate_image"),
    "article_illustration": ({"title": "Rust at scale"}, "generate_image"),
    "try_on_photo": ({"garment_image": "ttapi://images/abc"}, "edit_image"),
    "product_cover": ({"product": "a ceramic mug", "transparent": "yes"}, "generate_image"),
    "story_illustration": ({"scene": "a fox crossing a frozen river"}, "generate_image"),
}


async def test_prompts_produce_ready_requests(server_settings: Any, client_mode: str) -> None:
    async with mcp_client(server_settings, client_mode) as client:
        listed = {p.name: p for p in (await client.list_prompts()).prompts}
        assert set(listed) == set(PROMPT_ARGS)
        tools = {t.name: t for t in (await client.list_tools()).tools}
        for name, (args, tool) in PROMPT_ARGS.items():
            assert listed[name].arguments and listed[name].title
            got = await client.get_prompt(name, args)
            text = got.messages[0].content.text
            call = json.loads(text.split("```json\n")[1].split("\n```")[0])
            assert call["tool"] == tool
            assert set(call["arguments"]) <= set(tools[tool].input_schema["properties"])
            if name == "product_cover":
                assert call["arguments"]["background"] == "transparent"


async def test_prompt_requests_are_valid_calls(server_settings: Any, emulator: Emulator) -> None:
    """The poster prompt's request runs as is."""
    async with mcp_client(server_settings) as client:
        got = await client.get_prompt("poster", {"subject": "spring", "headline": "Bloom"})
        call = json.loads(got.messages[0].content.text.split("```json\n")[1].split("\n```")[0])
        result = await client.call_tool(call["tool"], {**call["arguments"], "preview": "none"})
    assert not result.is_error, result.content
