"""The per-model rules: every rule of the contract's §5 and §8, reported all at once."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from ttapi_mcp.catalog import (
    MODELS,
    catalog_as_json,
    upstream_options,
    validate_edit,
    validate_generation,
)
from ttapi_mcp.imagefacts import ImageFacts, has_transparent_pixel, sniff_bytes, sniff_file

MIB = 1024 * 1024


def params_of(violations: list) -> list[str]:
    return [v.param for v in violations]


def gen(**kw: object) -> list:
    return validate_generation({"prompt": "a cat", "model": "gpt-image-1", **kw})


@pytest.mark.parametrize("model", sorted(MODELS))
def test_minimal_generation_is_valid_for_every_model(model: str) -> None:
    assert validate_generation({"prompt": "a cat", "model": model}) == []


@pytest.mark.parametrize(
    ("model", "kw", "param"),
    [
        ("gpt-image-1", {"size": "1024x1024 "}, "size"),  # trailing space of the seed samples
        ("gpt-image-1", {"size": "1792x1024"}, "size"),
        ("dall-e-2", {"size": "1536x1024"}, "size"),
        ("dall-e-3", {"size": "512x512"}, "size"),
        ("dall-e-3", {"n": 2}, "n"),
        ("gpt-image-1", {"n": 11}, "n"),
        ("gpt-image-1", {"n": 0}, "n"),
        ("gpt-image-1", {"n": True}, "n"),
        ("gpt-image-1", {"n": "2"}, "n"),
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
        ("dall-e-2", {"response_format": "png"}, "response_format"),
        ("gpt-image-1", {"output_format": "gif"}, "output_format"),
        ("gpt-image-1", {"output_format": "jpeg", "background": "transparent"}, "background"),
        ("gpt-image-1", {"output_compression": 80}, "output_compression"),
        ("gpt-image-1", {"output_format": "png", "output_compression": 80}, "output_compression"),
        ("gpt-image-1", {"output_format": "webp", "output_compression": 101}, "output_compression"),
        ("gpt-image-1", {"input_fidelity": "high"}, "input_fidelity"),  # edit only
        ("dall-e-2", {"prompt": "x" * 1001}, "prompt"),
        ("dall-e-3", {"prompt": "x" * 4001}, "prompt"),
        ("gpt-image-1", {"prompt": "x" * 32001}, "prompt"),
        ("gpt-image-1", {"prompt": ""}, "prompt"),
        ("gpt-image-2", {"size": "1000x1000"}, "size"),
        ("gpt-image-2", {"size": "4096x1024"}, "size"),
        ("gpt-image-2", {"size": "3840x1024"}, "size"),
        ("gpt-image-2", {"size": "big"}, "size"),
        ("dall-e-4", {}, "model"),
    ],
)
def test_each_generation_rule(model: str, kw: dict, param: str) -> None:
    violations = validate_generation({"prompt": "a cat", "model": model, **kw})
    assert param in params_of(violations), violations
    for v in violations:
        assert v.message.endswith(".") and len(v.message) > 20


@pytest.mark.parametrize(
    ("model", "kw"),
    [
        ("gpt-image-1", {"size": "1536x1024", "quality": "high", "n": 10}),
        ("gpt-image-1", {"background": "transparent", "output_format": "webp",
                         "output_compression": 50, "moderation": "low"}),
        ("gpt-image-1", {"response_format": "b64_json"}),
        ("dall-e-2", {"size": "256x256", "response_format": "b64_json", "quality": "auto"}),
        ("dall-e-3", {"size": "1792x1024", "quality": "hd", "style": "natural"}),
        ("gpt-image-2", {"size": "3840x2160"}),
        ("gpt-image-2", {"size": "1280x720"}),
        ("gpt-image-1", {"prompt": "画一张猫" * 8000}),
    ],
)
def test_valid_generations(model: str, kw: dict) -> None:
    assert validate_generation({"prompt": "a cat", "model": model, **kw}) == []


def test_all_violations_are_reported_together() -> None:
    violations = validate_generation({
        "prompt": "", "model": "dall-e-3", "n": 3, "size": "1024x1024 ",
        "background": "transparent", "quality": "ultra",
    })
    assert set(params_of(violations)) == {"prompt", "n", "size", "background", "quality"}
    size = next(v for v in violations if v.param == "size")
    assert "'1024x1024 '" in size.message and "1792x1024" in size.message


def test_legacy_dalle3_route_refuses_style_and_response_format() -> None:
    params = {"prompt": "a cat", "model": "dall-e-3", "style": "vivid", "response_format": "url"}
    assert validate_generation(params, route="v1") == []
    assert set(params_of(validate_generation(params, route="legacy"))) == {
        "style", "response_format"}


def test_upstream_options_drop_unset_and_auto_quality_for_dalle() -> None:
    sent = upstream_options({"prompt": "p", "model": "dall-e-2", "quality": "auto", "n": None})
    assert sent == {"prompt": "p", "model": "dall-e-2"}
    sent = upstream_options({"prompt": "p", "model": "gpt-image-1", "quality": "auto",
                             "response_format": "b64_json"})
    assert sent == {"prompt": "p", "model": "gpt-image-1", "quality": "auto"}


def image_bytes(mode: str, fmt: str, size: tuple[int, int] = (64, 64), **kw: object) -> bytes:
    buf = io.BytesIO()
    fill = (0, 0, 0, 0) if mode == "RGBA" else None
    Image.new(mode, size, fill).save(buf, fmt, **kw)
    return buf.getvalue()


def facts(mode: str = "RGB", fmt: str = "PNG", size: tuple[int, int] = (64, 64)) -> ImageFacts:
    data = image_bytes(mode, fmt, size)
    return sniff_bytes(data, len(data))


def edit(model: str = "gpt-image-1", images: list[ImageFacts] | None = None,
         mask: ImageFacts | None = None, **kw: object) -> list:
    return validate_edit({"prompt": "edit", "model": model, **kw},
                         images if images is not None else [facts()], mask,
                         mask_has_transparent_pixel=True)


def test_valid_edits() -> None:
    assert edit(images=[facts(), facts("RGB", "JPEG"), facts("RGB", "WEBP")]) == []
    assert edit(images=[facts()], mask=facts("RGBA"), input_fidelity="high") == []
    assert validate_edit({"prompt": "e", "model": "dall-e-2"}, [facts("RGBA")], facts("RGBA"),
                         mask_has_transparent_pixel=True) == []


@pytest.mark.parametrize(
    ("model", "images", "mask", "kw", "param"),
    [
        ("dall-e-3", [facts()], None, {}, "model"),
        ("gpt-image-1", [], None, {}, "images"),
        ("gpt-image-1", [facts()] * 17, None, {}, "images"),
        ("dall-e-2", [facts(), facts()], None, {}, "images"),
        ("gpt-image-1", [facts("P", "GIF")], None, {}, "images[0]"),
        ("gpt-image-1", [facts(), facts("RGB", "BMP")], None, {}, "images[1]"),
        ("dall-e-2", [facts("RGB", "JPEG")], None, {}, "images[0]"),
        ("dall-e-2", [facts(size=(64, 32))], None, {}, "images[0]"),
        ("gpt-image-1", [facts()], facts("RGB", "JPEG"), {}, "mask"),
        ("gpt-image-1", [facts()], facts("RGBA", size=(32, 32)), {}, "mask"),
        ("gpt-image-1", [facts()], facts("RGB"), {}, "mask"),
        ("gpt-image-2", [facts()], None, {"input_fidelity": "high"}, "input_fidelity"),
        ("gpt-image-2", [facts()], None, {"background": "transparent"}, "background"),
        ("dall-e-2", [facts("RGBA")], facts("RGBA"), {"input_fidelity": "low"}, "input_fidelity"),
        ("gpt-image-1", [facts()], None, {"style": "vivid"}, "style"),
        ("gpt-image-1", [facts()], None, {"moderation": "high"}, "moderation"),
        ("dall-e-2", [facts("RGBA")], facts("RGBA"), {"prompt": "x" * 1001}, "prompt"),
    ],
)
def test_each_edit_rule(model: str, images: list, mask: ImageFacts | None, kw: dict,
                        param: str) -> None:
    params = {"prompt": "edit", "model": model, **kw}
    violations = validate_edit(params, images, mask, mask_has_transparent_pixel=True)
    assert param in params_of(violations), violations


def test_byte_limits_are_strictly_less_than() -> None:
    big = ImageFacts(format="png", detected="png", bytes=4 * MIB, width=64, height=64,
                     has_alpha=True)
    just_under = big.model_copy(update={"bytes": 4 * MIB - 1})
    assert "images[0]" in params_of(validate_edit({"prompt": "e", "model": "dall-e-2"}, [big]))
    assert validate_edit({"prompt": "e", "model": "dall-e-2"}, [just_under]) == []
    assert "mask" in params_of(validate_edit({"prompt": "e", "model": "gpt-image-1"},
                                             [facts()], big))
    gpt = big.model_copy(update={"bytes": 10 * MIB})
    assert validate_edit({"prompt": "e", "model": "gpt-image-1"}, [gpt]) == []
    assert "images[0]" in params_of(validate_edit({"prompt": "e", "model": "gpt-image-1"},
                                                  [gpt], max_image_bytes=10 * MIB))


def test_mask_without_transparent_pixel_and_dalle2_without_mask(tmp_path: Path) -> None:
    opaque = tmp_path / "opaque.png"
    Image.new("RGBA", (64, 64), (1, 2, 3, 255)).save(opaque)
    hole = tmp_path / "hole.png"
    img = Image.new("RGBA", (64, 64), (1, 2, 3, 255))
    img.putpixel((5, 5), (0, 0, 0, 0))
    img.save(hole)
    assert has_transparent_pixel(hole) is True
    assert has_transparent_pixel(opaque) is False
    violations = validate_edit({"prompt": "e", "model": "gpt-image-1"}, [facts()],
                               sniff_file(opaque), mask_has_transparent_pixel=False)
    assert params_of(violations) == ["mask"] and "transparent" in violations[0].message
    violations = validate_edit({"prompt": "e", "model": "dall-e-2"}, [sniff_file(opaque)],
                               image_has_transparent_pixel=False)
    assert params_of(violations) == ["mask"]


def test_palette_png_with_trns_counts_as_alpha(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    Image.new("P", (8, 8), 0).save(path, transparency=0)
    assert sniff_file(path).has_alpha is True
    assert has_transparent_pixel(path) is True


def test_catalog_json_describes_every_model() -> None:
    data = catalog_as_json()
    assert set(data["models"]) == set(MODELS)
    assert data["models"]["dall-e-3"]["edit"] is None
    assert data["models"]["gpt-image-1"]["generate"]["sizes"][0] == "auto"
    assert data["models"]["gpt-image-2"]["documented_by_ttapi"] is True
    assert "gpt-image-1-mini" not in data["models"]  # §11.3: on no TTAPI page
    assert "transparent" not in data["models"]["gpt-image-2"]["generate"]["options"]["background"]
    assert "input_fidelity" not in data["models"]["gpt-image-2"]["edit"]["options"]
    assert "moderation" in data["models"]["gpt-image-1"]["edit"]["options"]


@pytest.mark.parametrize(("size", "problem", "nearest"), [
    ("1000x1000", "multiples of 16", "992x992"),
    ("4096x1024", "at most 3840", "3840x1280"),
    ("3840x1024", "3 times", "3744x1248"),
    ("512x512", "pixels", "816x816"),
    ("4000x4000", "at most 3840", "2880x2880"),
])
def test_free_size_rule_names_the_nearest_valid_size(
    size: str, problem: str, nearest: str
) -> None:
    from ttapi_mcp.catalog.sizes import free_size_problem, nearest_free_size

    assert problem in (free_size_problem(size) or "")
    assert nearest_free_size(size) == nearest
    assert free_size_problem(nearest) is None
    violations = validate_generation({"prompt": "p", "model": "gpt-image-2", "size": size})
    assert [v.param for v in violations] == ["size"]
    assert f"nearest valid size is '{nearest}'" in violations[0].message


def test_every_nearest_size_is_valid_over_a_grid() -> None:
    from ttapi_mcp.catalog.sizes import free_size_problem, nearest_free_size

    for w in range(1, 6000, 397):
        for h in range(1, 6000, 431):
            nearest = nearest_free_size(f"{w}x{h}")
            assert nearest is not None and free_size_problem(nearest) is None, (w, h)
