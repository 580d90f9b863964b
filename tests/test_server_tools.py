"""The four tools through a real in-memory MCP client, in both protocol eras."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest
from conftest import CANARY_KEY, make_server_settings, mcp_client
from PIL import Image

from ttapi_mcp.emulator import Emulator, Fault

pytestmark = pytest.mark.anyio

MODEL_CASES = [
    ("gpt-image-1", {"size": "1024x1024", "quality": "low"}),
    ("gpt-image-1.5", {"output_format": "webp", "output_compression": 70}),
    ("gpt-image-2", {"size": "1280x720"}),
    ("dall-e-2", {"size": "256x256"}),
    ("dall-e-2", {"size": "256x256", "response_format": "b64_json"}),
    ("dall-e-3", {"style": "natural"}),
]


def _image_file(path: Path, size: tuple[int, int], mode: str = "RGB", hole: bool = False) -> str:
    img = Image.new(mode, size, (200, 40, 40, 255) if mode == "RGBA" else (200, 40, 40))
    if hole:
        img.paste((0, 0, 0, 0), (0, 0, size[0] // 2, size[1] // 2))
    img.save(path, "PNG")
    return str(path)


async def test_tools_are_declared_with_titles_annotations_and_schemas(
    server_settings: Any, client_mode: str
) -> None:
    async with mcp_client(server_settings, client_mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == {"generate_image", "edit_image", "gpt4o_image", "fetch_job"}
    expected_args = {
        "generate_image": {"prompt", "model", "n", "size", "quality", "style", "background",
                           "output_format", "output_compression", "moderation",
                           "response_format", "partial_images", "preview", "wait",
                           "dedupe", "confirm_cost"},
        "edit_image": {"prompt", "images", "mask", "model", "n", "size", "quality",
                       "background", "output_format", "output_compression", "input_fidelity",
                       "moderation", "partial_images", "preview", "wait", "dedupe",
                       "confirm_cost"},
        "gpt4o_image": {"prompt", "refer_images", "hook_url", "wait", "model", "aspect_ratio",
                        "size", "confirm_cost"},
        "fetch_job": {"job_id", "wait"},
    }
    for name, tool in tools.items():
        props = tool.input_schema["properties"]
        assert set(props) == expected_args[name]
        assert tool.title
        assert tool.output_schema is not None and "images" in tool.output_schema["properties"]
        for arg, schema in props.items():
            assert schema.get("description"), f"{name}.{arg} has no description"
        ann = tool.annotations
        assert ann is not None and ann.open_world_hint is True
        if name == "fetch_job":
            assert ann.read_only_hint is True and ann.idempotent_hint is True
        else:
            assert ann.read_only_hint is False and ann.destructive_hint is False
            assert ann.idempotent_hint is False
    model_schema = tools["generate_image"].input_schema["properties"]["model"]
    enum = next(s["enum"] for s in model_schema["anyOf"] if "enum" in s)
    assert set(enum) == {"gpt-image-1", "gpt-image-1.5", "gpt-image-2", "dall-e-2", "dall-e-3"}
    assert "dall-e-3" in tools["generate_image"].input_schema["properties"]["n"]["description"]


@pytest.mark.parametrize(("model", "extra"), MODEL_CASES)
async def test_generate_with_each_model(
    server_settings: Any, emulator: Emulator, model: str, extra: dict[str, Any]
) -> None:
    async with mcp_client(server_settings) as client:
        result = await client.call_tool(
            "generate_image", {"prompt": f"a lighthouse by {model}", "model": model, **extra})
    assert not result.is_error, result.content
    data = result.structured_content
    assert data is not None and data["status"] == "completed" and data["model"] == model
    (image,) = data["images"]
    path = Path(image["path"])
    assert path.is_absolute() and path.is_file() and path.stat().st_size == image["bytes"]
    assert path.parent == server_settings.output_dir.resolve()
    with Image.open(path) as im:
        assert (im.width, im.height) == (image["width"], image["height"])
        assert Image.MIME[im.format] == image["mime"]
    assert image["uri"] == f"ttapi://images/{image['id']}"
    if model == "dall-e-3":
        assert image["revised_prompt"]
    if model == "dall-e-2" and "response_format" not in extra:
        assert image["source_url"] and image["url_expires_at"]
    if model.startswith("gpt"):
        assert data["usage"]["total_tokens"] > 0
    (sent,) = emulator.api_requests("E1")
    assert sent.json["model"] == model
    kinds = [block.type for block in result.content]
    assert kinds == ["text", "resource_link", "image"]
    link = result.content[1]
    assert link.uri == image["uri"] and link.mime_type == image["mime"]
    assert link.size == image["bytes"]


async def test_generate_in_legacy_mode_and_dalle3_legacy_route(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path, dalle3_route="legacy")
    async with mcp_client(settings, "legacy") as client:
        result = await client.call_tool(
            "generate_image", {"prompt": "a quiet harbour", "model": "dall-e-3",
                               "quality": "hd"})
    assert not result.is_error, result.content
    assert emulator.api_requests("E1") == []
    (sent,) = emulator.api_requests("E3")
    assert sent.json["size"] == "1024x1024" and sent.json["quality"] == "hd"
    assert Path(result.structured_content["images"][0]["path"]).is_file()


async def test_edit_with_two_images_and_a_mask(
    server_settings: Any, emulator: Emulator, tmp_path: Path, client_mode: str
) -> None:
    out = server_settings.output_dir
    out.mkdir(parents=True, exist_ok=True)
    first = _image_file(out / "first.png", (64, 64))
    second = _image_file(out / "second.png", (48, 80))
    mask = _image_file(out / "mask.png", (64, 64), "RGBA", hole=True)
    async with mcp_client(server_settings, client_mode) as client:
        result = await client.call_tool("edit_image", {
            "prompt": "put the two together", "images": [first, second], "mask": mask,
            "input_fidelity": "high", "size": "1024x1024", "quality": "low",
        })
        assert not result.is_error, result.content
        image = result.structured_content["images"][0]
        # The saved result is itself a valid input for the next edit.
        again = await client.call_tool("edit_image", {
            "prompt": "warmer light", "images": [image["uri"]], "model": "gpt-image-1",
            "quality": "low", "preview": "none"})
    assert not again.is_error, again.content
    first_call, second_call = emulator.api_requests("E2")
    parts = [f[0] for f in first_call.files]
    assert parts.count("image[]") == 2 and parts.count("mask") == 1
    assert first_call.form["input_fidelity"] == "high"
    assert [f[0] for f in second_call.files] == ["image[]"]
    assert [b.type for b in again.content] == ["text", "resource_link"]


async def test_dalle2_edit_uses_its_own_rules(server_settings: Any, emulator: Emulator) -> None:
    out = server_settings.output_dir
    out.mkdir(parents=True, exist_ok=True)
    square = _image_file(out / "square.png", (64, 64), "RGBA", hole=True)
    async with mcp_client(server_settings) as client:
        result = await client.call_tool("edit_image", {
            "prompt": "a hat", "images": [square], "model": "dall-e-2", "size": "256x256"})
    assert not result.is_error, result.content
    assert len(emulator.api_requests("E2")) == 1


async def test_partial_success_keeps_the_good_image(
    server_settings: Any, emulator: Emulator, client_mode: str
) -> None:
    emulator.add_fault(Fault(route="E1", kind="truncated_b64"))
    async with mcp_client(server_settings, client_mode) as client:
        result = await client.call_tool(
            "generate_image", {"prompt": "two foxes", "n": 2, "quality": "low"})
    assert not result.is_error, result.content
    data = result.structured_content
    assert data["status"] == "partial"
    assert [im["index"] for im in data["images"]] == [0]
    assert [m["index"] for m in data["missing"]] == [1]
    assert "image 1" in data["missing"][0]["error"]
    assert "Image 1 is missing" in result.content[0].text
    saved = [p for p in server_settings.output_dir.iterdir() if not p.name.startswith(".")]
    assert [str(p) for p in saved] == [data["images"][0]["path"]]


async def test_preview_modes_and_thumbnail_bounds(server_settings: Any) -> None:
    async with mcp_client(server_settings) as client:
        thumb = await client.call_tool(
            "generate_image", {"prompt": "a big canvas", "size": "1536x1024", "quality": "low"})
        full = await client.call_tool(
            "generate_image", {"prompt": "small", "model": "dall-e-2", "size": "256x256",
                               "preview": "full"})
        none = await client.call_tool(
            "generate_image", {"prompt": "none", "model": "dall-e-2", "size": "256x256",
                               "preview": "none"})
    block = thumb.content[-1]
    assert block.type == "image" and block.mime_type in ("image/webp", "image/jpeg")
    assert len(block.data) <= 100_000
    with Image.open(io.BytesIO(base64.b64decode(block.data))) as im:
        assert max(im.size) <= 512 and im.size == (512, 341)
    full_block = full.content[-1]
    path = Path(full.structured_content["images"][0]["path"])
    assert full_block.type == "image" and base64.b64decode(full_block.data) == path.read_bytes()
    assert [b.type for b in none.content] == ["text", "resource_link"]


async def test_preview_default_comes_from_settings(emulator: Emulator, tmp_path: Path) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path, preview="none")
    async with mcp_client(settings) as client:
        result = await client.call_tool(
            "generate_image", {"prompt": "x", "model": "dall-e-2", "size": "256x256"})
    assert [b.type for b in result.content] == ["text", "resource_link"]


async def test_without_a_key_tools_list_and_calls_explain_how_to_set_it(
    emulator: Emulator, tmp_path: Path, client_mode: str
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path, api_key=None)
    async with mcp_client(settings, client_mode) as client:
        assert len((await client.list_tools()).tools) == 4
        result = await client.call_tool("generate_image", {"prompt": "a cat"})
        job = await client.call_tool("fetch_job", {"job_id": "abc-123"})
    assert result.is_error and job.is_error
    text = result.content[0].text
    assert "TTAPI_API_KEY" in text and '"api_key"' in text
    assert emulator.api_requests() == []


async def test_upstream_errors_become_tool_errors_without_the_key(
    server_settings: Any, emulator: Emulator
) -> None:
    emulator.add_fault(Fault(route="E1", status=402))
    async with mcp_client(server_settings) as client:
        result = await client.call_tool("generate_image", {"prompt": "a cat"})
    assert result.is_error
    text = result.content[0].text
    assert "402" in text and CANARY_KEY not in text
