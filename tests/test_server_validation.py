"""Every catalog rule, through the real tool: one tool error, nothing sent upstream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import mcp_client
from PIL import Image

from ttapi_mcp.emulator import Emulator

pytestmark = pytest.mark.anyio

GENERATION_RULES: list[tuple[str, dict[str, Any], str]] = [
    ("gpt-image-1", {"size": "1024x1024 "}, "size"),
    ("gpt-image-1", {"size": "1792x1024"}, "size"),
    ("dall-e-2", {"size": "1536x1024"}, "size"),
    ("dall-e-3", {"size": "512x512"}, "size"),
    ("dall-e-3", {"n": 2}, "n"),
    ("gpt-image-1", {"n": 11}, "n"),
    ("gpt-image-1", {"n": 0}, "n"),
    ("gpt-image-1", {"quality": "hd"}, "quality"),
    ("dall-e-2", {"quality": "hd"}, "quality"),
    ("dall-e-3", {"quality": "low"}, "quality"),
    ("gpt-image-1", {"style": "vivid"}, "style"),
    ("dall-e-2", {"style": "vivid"}, "style"),
    ("dall-e-3", {"style": "photographic"}, "style"),
    ("dall-e-2", {"background": "transparent"}, "background"),
    ("dall-e-3", {"output_format": "png"}, "output_format"),
    ("dall-e-2", {"output_compression": 50}, "output_compression"),
    ("dall-e-3", {"moderation": "low"}, "moderation"),
    ("gpt-image-1", {"moderation": "high"}, "moderation"),
    ("gpt-image-1", {"response_format": "url"}, "response_format"),
    ("gpt-image-1", {"output_format": "gif"}, "output_format"),
    ("gpt-image-1", {"output_format": "jpeg", "background": "transparent"}, "background"),
    ("gpt-image-1", {"output_compression": 80}, "output_compression"),
    ("gpt-image-1", {"output_format": "png", "output_compression": 80}, "output_compression"),
    ("gpt-image-1", {"output_format": "webp", "output_compression": 101}, "output_compression"),
    ("dall-e-2", {"prompt": "x" * 1001}, "prompt"),
    ("dall-e-3", {"prompt": "x" * 4001}, "prompt"),
    ("gpt-image-1", {"prompt": "x" * 32001}, "prompt"),
    ("gpt-image-1", {"prompt": ""}, "prompt"),
    ("gpt-image-2", {"size": "1000x1000"}, "size"),
    ("gpt-image-2", {"size": "4096x1024"}, "size"),
    ("gpt-image-2", {"size": "3840x1024"}, "size"),
    ("gpt-image-2", {"size": "big"}, "size"),
    ("gpt-image-2", {"size": "512x512"}, "size"),
    ("gpt-image-2", {"background": "transparent"}, "background"),
    ("gpt-image-1-mini", {}, "model"),
    ("dall-e-4", {}, "model"),
]


@pytest.mark.parametrize(("model", "extra", "param"), GENERATION_RULES)
async def test_each_generation_rule_is_enforced_before_any_request(
    server_settings: Any, emulator: Emulator, model: str, extra: dict[str, Any], param: str
) -> None:
    args = {"prompt": "a cat", "model": model, **extra}
    async with mcp_client(server_settings) as client:
        result = await client.call_tool("generate_image", args)
    assert result.is_error
    assert param in result.content[0].text
    assert emulator.api_requests() == []


async def test_all_violations_arrive_in_one_error(
    server_settings: Any, emulator: Emulator, client_mode: str
) -> None:
    args = {"prompt": "a cat", "model": "dall-e-3", "n": 3, "size": "1024x1024 ",
            "background": "transparent", "quality": "low"}
    async with mcp_client(server_settings, client_mode) as client:
        result = await client.call_tool("generate_image", args)
    assert result.is_error
    text = result.content[0].text
    assert "4 problems" in text
    for word in ("n=3", "'1024x1024 '", "background", "quality"):
        assert word in text
    assert "nothing was billed" in text
    assert emulator.api_requests() == []


def _png(path: Path, size: tuple[int, int], mode: str = "RGB", hole: bool = False) -> str:
    img = Image.new(mode, size, (9, 9, 9, 255) if mode == "RGBA" else (9, 9, 9))
    if hole:
        img.paste((0, 0, 0, 0), (0, 0, 8, 8))
    img.save(path)
    return str(path)


def _edit_cases(out: Path) -> dict[str, tuple[dict[str, Any], str]]:
    rgb = _png(out / "rgb.png", (64, 64))
    wide = _png(out / "wide.png", (64, 32))
    clear = _png(out / "clear.png", (64, 64), "RGBA", hole=True)
    opaque = _png(out / "opaque.png", (64, 64), "RGBA")
    small_mask = _png(out / "small.png", (32, 32), "RGBA", hole=True)
    gif = out / "anim.gif"
    Image.new("P", (64, 64)).save(gif)
    jpeg = out / "photo.jpg"
    Image.new("RGB", (64, 64)).save(jpeg)
    return {
        "dall-e-3 cannot edit": ({"model": "dall-e-3", "images": [rgb]}, "model"),
        "too many images": ({"images": [rgb] * 17}, "images"),
        "dall-e-2 one image": ({"model": "dall-e-2", "images": [clear, clear]}, "images"),
        "gif refused": ({"images": [str(gif)]}, "images[0]"),
        "dall-e-2 png only": ({"model": "dall-e-2", "images": [str(jpeg)]}, "images[0]"),
        "dall-e-2 square": ({"model": "dall-e-2", "images": [wide]}, "images[0]"),
        "dall-e-2 needs transparency": ({"model": "dall-e-2", "images": [rgb]}, "mask"),
        "mask jpeg": ({"images": [rgb], "mask": str(jpeg)}, "mask"),
        "mask size": ({"images": [rgb], "mask": small_mask}, "mask"),
        "mask alpha": ({"images": [rgb], "mask": rgb}, "mask"),
        "mask transparent pixel": ({"images": [rgb], "mask": opaque}, "mask"),
        "gpt-image-2 fidelity": ({"model": "gpt-image-2", "images": [rgb],
                                  "input_fidelity": "high"}, "input_fidelity"),
        "gpt-image-2 transparent": ({"model": "gpt-image-2", "images": [rgb],
                                     "background": "transparent"}, "background"),
        "mini is gone": ({"model": "gpt-image-1-mini", "images": [rgb]}, "model"),
        "dall-e-2 fidelity": ({"model": "dall-e-2", "images": [clear],
                               "input_fidelity": "low"}, "input_fidelity"),
        "dall-e-2 prompt": ({"model": "dall-e-2", "images": [clear], "prompt": "x" * 1001},
                            "prompt"),
        "path outside roots": ({"images": ["/etc/hostname"]}, "images[0]"),
        "relative path": ({"images": ["rgb.png"]}, "images[0]"),
        "unknown resource": ({"images": ["ttapi://images/nosuchimage"]}, "images[0]"),
        "bad data uri": ({"images": ["data:image/png;base64,!!!!"]}, "images[0]"),
    }


EDIT_CASE_NAMES = [
    "dall-e-3 cannot edit", "too many images", "dall-e-2 one image", "gif refused",
    "dall-e-2 png only", "dall-e-2 square", "dall-e-2 needs transparency", "mask jpeg",
    "mask size", "mask alpha", "mask transparent pixel", "gpt-image-2 fidelity",
    "gpt-image-2 transparent", "mini is gone", "dall-e-2 fidelity",
    "dall-e-2 prompt", "path outside roots", "relative path", "unknown resource",
    "bad data uri",
]


@pytest.mark.parametrize("case", EDIT_CASE_NAMES)
async def test_each_edit_rule_is_enforced_before_any_request(
    server_settings: Any, emulator: Emulator, case: str
) -> None:
    out = server_settings.output_dir
    out.mkdir(parents=True, exist_ok=True)
    args, param = _edit_cases(out)[case]
    async with mcp_client(server_settings) as client:
        result = await client.call_tool("edit_image", {"prompt": "edit it", **args})
    assert result.is_error, case
    assert param in result.content[0].text
    assert emulator.api_requests() == []


async def test_input_errors_and_parameter_rules_are_reported_together(
    server_settings: Any, emulator: Emulator
) -> None:
    async with mcp_client(server_settings) as client:
        result = await client.call_tool("edit_image", {
            "prompt": "x", "images": ["/nonexistent/a.png"], "size": "999x999",
            "model": "gpt-image-1"})
    text = result.content[0].text
    assert result.is_error and "images[0]" in text and "size" in text
    assert emulator.api_requests() == []


@pytest.mark.parametrize(
    ("args", "word"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "draw", "refer_images": ["/home/me/cat.png"]}, "refer_images[0]"),
        ({"prompt": "draw", "refer_images": ["https://example.com/a.png"] * 17}, "refer_images"),
        ({"prompt": "draw", "hook_url": "ftp://example.com/hook"}, "hook_url"),
        ({"prompt": "x" * 32001}, "prompt"),
    ],
)
async def test_gpt4o_rules_are_enforced_before_submitting(
    server_settings: Any, emulator: Emulator, args: dict[str, Any], word: str
) -> None:
    async with mcp_client(server_settings) as client:
        result = await client.call_tool("gpt4o_image", args)
    assert result.is_error and word in result.content[0].text
    assert emulator.api_requests() == []


async def test_bad_job_id_is_refused_without_a_request(
    server_settings: Any, emulator: Emulator
) -> None:
    async with mcp_client(server_settings) as client:
        result = await client.call_tool("fetch_job", {"job_id": "../../etc/passwd"})
    assert result.is_error and "job_id" in result.content[0].text
    assert emulator.api_requests() == []
