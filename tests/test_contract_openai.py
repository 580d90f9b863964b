"""The official `openai` SDK against the emulator: it accepts what the SDK sends and the SDK
parses what it answers. A client nobody here wrote checks the emulator's fidelity."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import httpx2
import openai
import pytest
from PIL import Image

from ttapi_mcp.emulator import Emulator


@pytest.fixture
def sdk(emulator: Emulator) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(api_key="sdk-key", base_url=f"{emulator.base_url}/v1", max_retries=0,
                           timeout=20)
    yield client
    client.close()


def png(path: Path, size: tuple[int, int], clear: bool = False) -> Path:
    im = Image.new("RGBA", size, (20, 120, 200, 255))
    if clear:
        im.paste((0, 0, 0, 0), (0, 0, size[0] // 2, size[1] // 2))
    im.save(path, "PNG")
    return path


def b64_image(data: str | None) -> Image.Image:
    assert data is not None
    return Image.open(io.BytesIO(base64.b64decode(data)))


def test_generate_gpt_image_1(sdk: openai.OpenAI, emulator: Emulator) -> None:
    result = sdk.images.generate(model="gpt-image-1", prompt="a paper crane", n=2,
                                 size="1024x1536", quality="medium", background="transparent",
                                 output_format="webp", output_compression=80)
    assert result.data is not None and len(result.data) == 2
    im = b64_image(result.data[0].b64_json)
    assert (im.format, im.size, im.mode) == ("WEBP", (1024, 1536), "RGBA")
    assert result.usage is not None and result.usage.output_tokens == 2 * 1584
    assert (result.size, result.quality, result.output_format) == ("1024x1536", "medium", "webp")
    record = emulator.api_requests("E1")[-1]
    assert record.headers["authorization"] == "Bearer ***"
    assert record.json["model"] == "gpt-image-1"


@pytest.mark.parametrize("response_format", ["url", "b64_json"])
def test_generate_dalle2(sdk: openai.OpenAI, response_format: str) -> None:
    result = sdk.images.generate(model="dall-e-2", prompt="a kite", size="512x512",
                                 response_format=response_format)  # type: ignore[arg-type]
    assert result.data is not None
    item = result.data[0]
    if response_format == "url":
        assert item.url is not None and item.b64_json is None
        im = Image.open(io.BytesIO(_download(item.url)))
    else:
        im = b64_image(item.b64_json)
    assert im.size == (512, 512)


def _download(url: str) -> bytes:
    resp = httpx2.get(url)
    resp.raise_for_status()
    return resp.content


def test_generate_dalle3(sdk: openai.OpenAI) -> None:
    result = sdk.images.generate(model="dall-e-3", prompt="a lighthouse", size="1792x1024",
                                 quality="hd", style="natural")
    assert result.data is not None
    item = result.data[0]
    assert item.revised_prompt and "lighthouse" in item.revised_prompt
    assert item.url is not None
    assert Image.open(io.BytesIO(_download(item.url))).size == (1792, 1024)


def test_edit_gpt_two_images_and_mask(sdk: openai.OpenAI, emulator: Emulator,
                                      tmp_path: Path) -> None:
    first = png(tmp_path / "first.png", (64, 64))
    second = png(tmp_path / "second.png", (48, 48))
    mask = png(tmp_path / "mask.png", (64, 64), clear=True)
    result = sdk.images.edit(model="gpt-image-1", prompt="merge them", image=[first, second],
                             mask=mask, input_fidelity="high", size="1024x1024")
    assert result.data is not None and b64_image(result.data[0].b64_json).size == (1024, 1024)
    assert result.usage is not None
    assert result.usage.input_tokens_details.image_tokens > 0
    record = emulator.api_requests("E2")[-1]
    assert record.status == 200
    assert [(f[0], f[1], f[2]) for f in record.files] == [
        ("image[]", "first.png", "image/png"), ("image[]", "second.png", "image/png"),
        ("mask", "mask.png", "image/png")]
    assert record.form["model"] == "gpt-image-1" and record.form["input_fidelity"] == "high"


def test_edit_dalle2_square_png_and_mask(sdk: openai.OpenAI, emulator: Emulator,
                                         tmp_path: Path) -> None:
    image = png(tmp_path / "square.png", (128, 128))
    mask = png(tmp_path / "mask.png", (128, 128), clear=True)
    result = sdk.images.edit(model="dall-e-2", prompt="add a moon", image=image, mask=mask,
                             size="256x256", response_format="b64_json", n=2)
    assert result.data is not None and len(result.data) == 2
    assert b64_image(result.data[1].b64_json).size == (256, 256)
    record = emulator.api_requests("E2")[-1]
    assert [f[0] for f in record.files] == ["image", "mask"]
    assert record.form["n"] == "2"


def test_bad_size_raises_bad_request(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        sdk.images.generate(model="gpt-image-1", prompt="p", size="1024x1024 ")  # type: ignore[arg-type]
    err = info.value
    assert err.status_code == 400
    assert (err.param, err.code) == ("size", "invalid_value")


def test_missing_key_raises_authentication_error(emulator: Emulator) -> None:
    emulator.options.api_keys = ["only-this"]
    client = openai.OpenAI(api_key="wrong", base_url=f"{emulator.base_url}/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        client.images.generate(model="dall-e-2", prompt="p")
    assert info.value.status_code == 401
    assert "Wrong TT-API-KEY" in info.value.message
    client.close()


def test_streamed_generation_parses_with_partial_images(
    sdk: openai.OpenAI, emulator: Emulator
) -> None:
    """§11.4: the SDK's own stream parser reads the emulator's server-sent events."""
    stream = sdk.images.generate(model="gpt-image-1", prompt="a lighthouse", size="1024x1024",
                                 quality="low", n=2, stream=True, partial_images=2)
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds == ["image_generation.partial_image"] * 2 + ["image_generation.completed"] \
        + ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    partials = [e for e in events if e.type == "image_generation.partial_image"]
    assert [p.partial_image_index for p in partials] == [0, 1, 0, 1]
    completed = [e for e in events if e.type == "image_generation.completed"]
    assert all(b64_image(e.b64_json).size == (1024, 1024) for e in completed)
    assert completed[0].usage.output_tokens > 0 and completed[0].size == "1024x1024"
    assert emulator.api_requests("E1")[-1].json["stream"] is True


def test_streamed_edit_parses(sdk: openai.OpenAI, emulator: Emulator, tmp_path: Path) -> None:
    image = png(tmp_path / "in.png", (64, 64))
    with open(image, "rb") as f:
        stream = sdk.images.edit(model="gpt-image-1", image=[f], prompt="add a hat",
                                 size="1024x1024", quality="low", stream=True, partial_images=1)
        events = list(stream)
    assert [e.type for e in events] == ["image_edit.partial_image", "image_edit.completed"]
    assert b64_image(events[-1].b64_json).size == (1024, 1024)


def test_streaming_is_refused_for_dall_e(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        list(sdk.images.generate(model="dall-e-2", prompt="p", stream=True))
    assert info.value.param == "stream"
