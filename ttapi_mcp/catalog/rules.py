"""Validation against the model table: every broken rule, reported at once.

An invalid request costs the user a round trip at best and money at worst, so
every rule TTAPI documents is checked before anything is sent, and all
violations are reported together so an agent can fix its call in one go.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ttapi_mcp.catalog.models import MIB, MODELS, PARTIAL_IMAGES_MAX, ModelSpec, Tool
from ttapi_mcp.catalog.sizes import free_size_problem, nearest_free_size
from ttapi_mcp.imagefacts import ACCEPTED_FORMATS_TEXT, ImageFacts

MASK_MAX_BYTES = 4 * MIB
OPTIONAL_FIELDS = (
    "style", "background", "moderation", "output_format", "output_compression",
    "response_format", "input_fidelity", "partial_images",
)


@dataclass(frozen=True)
class Violation:
    """One broken rule: which parameter, the value given, and what is allowed."""

    param: str
    value: Any
    message: str

    def __str__(self) -> str:
        return self.message


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _allowed(values: Sequence[str]) -> str:
    return ", ".join(values)


def _check_int(params: Mapping[str, Any], name: str, low: int, high: int,
               out: list[Violation], model: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        out.append(Violation(name, value, f"{name} must be a whole number, got {_show(value)}."))
        return None
    if not low <= value <= high:
        span = f"exactly {low}" if low == high else f"from {low} to {high}"
        out.append(Violation(
            name, value, f"{name}={value} is not allowed for {model}: use {span}."))
        return None
    return value


def _check_choice(params: Mapping[str, Any], name: str, allowed: Sequence[str],
                  out: list[Violation], model: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if value not in allowed:
        out.append(Violation(
            name, value,
            f"{name} {_show(value)} is not allowed for {model}; allowed: {_allowed(allowed)}."))
        return None
    return str(value)


def _common(params: Mapping[str, Any], tool: Tool, spec: ModelSpec,
            out: list[Violation]) -> None:
    prompt = params.get("prompt")
    limit = spec.generate_prompt_max if tool == "generate" else (spec.edit_prompt_max or 0)
    if not isinstance(prompt, str) or not prompt:
        out.append(Violation("prompt", prompt, "prompt is required: describe the image."))
    elif len(prompt) > limit:
        out.append(Violation(
            "prompt", f"<{len(prompt)} characters>",
            f"prompt has {len(prompt)} characters; {spec.name} accepts at most {limit}."))

    _check_int(params, "n", 1, spec.n_max, out, spec.name)

    size = params.get("size")
    if size is not None:
        if spec.sizes is not None:
            _check_choice(params, "size", spec.sizes, out, spec.name)
        elif size != "auto":
            problem = free_size_problem(size) if isinstance(size, str) else "must be a string"
            if problem:
                nearest = nearest_free_size(size) if isinstance(size, str) else None
                closest = f" The nearest valid size is '{nearest}'." if nearest else ""
                out.append(Violation(
                    "size", size,
                    f"size {_show(size)} is not allowed for {spec.name}: {problem}.{closest}"))

    _check_choice(params, "quality", spec.qualities, out, spec.name)

    options = spec.generate_options if tool == "generate" else spec.edit_options
    for name in OPTIONAL_FIELDS:
        if params.get(name) is None:
            continue
        if name not in options:
            users = [m.name for m in MODELS.values()
                     if name in (m.generate_options if tool == "generate" else m.edit_options)]
            where = f"only for {', '.join(users)}" if users else "not by this tool"
            out.append(Violation(
                name, params[name],
                f"{name} is not accepted by {spec.name} ({where}); leave it out."))
        elif name == "output_compression":
            _check_int(params, name, 0, 100, out, spec.name)
        elif name == "partial_images":
            _check_int(params, name, 0, PARTIAL_IMAGES_MAX, out, spec.name)
        elif name == "response_format":
            _check_choice(params, name, spec.response_formats, out, spec.name)
        else:
            _check_choice(params, name, spec.values[name], out, spec.name)

    _cross_field(params, spec, out)


def _cross_field(params: Mapping[str, Any], spec: ModelSpec, out: list[Violation]) -> None:
    if spec.family != "gpt":
        return
    fmt = params.get("output_format")
    if params.get("background") == "transparent" and fmt == "jpeg":
        out.append(Violation(
            "background", "transparent",
            "background 'transparent' needs output_format 'png' or 'webp' (JPEG has no alpha)."))
    compression = params.get("output_compression")
    if (isinstance(compression, int) and not isinstance(compression, bool)
            and compression < 100 and fmt in (None, "png")):
        out.append(Violation(
            "output_compression", compression,
            "output_compression below 100 needs output_format 'jpeg' or 'webp' "
            "(PNG is lossless); set output_format or leave output_compression out."))


def _spec_for(params: Mapping[str, Any], tool: Tool, out: list[Violation]) -> ModelSpec | None:
    model = params.get("model")
    usable = [m.name for m in MODELS.values() if tool == "generate" or m.edit_prompt_max]
    spec = MODELS.get(model) if isinstance(model, str) else None
    if spec is None or spec.name not in usable:
        out.append(Violation(
            "model", model,
            f"model {_show(model)} cannot {tool} images; use one of: {_allowed(usable)}."))
        return None
    return spec


def validate_generation(params: Mapping[str, Any], route: Literal["v1", "legacy"] = "v1"
                        ) -> list[Violation]:
    """Every rule a generate_image call breaks (an empty list means it may be sent)."""
    out: list[Violation] = []
    spec = _spec_for(params, "generate", out)
    if spec is None:
        return out
    _common(params, "generate", spec, out)
    if route == "legacy" and spec.name == "dall-e-3":
        for name in ("style", "response_format"):
            if params.get(name) is not None:
                out.append(Violation(
                    name, params[name],
                    f"{name} is not supported on the legacy dall-e-3 route; leave it out or "
                    "set dalle3_route to 'v1'."))
    return out


def validate_edit(
    params: Mapping[str, Any],
    images: Sequence[ImageFacts],
    mask: ImageFacts | None = None,
    *,
    max_image_bytes: int = 25 * MIB,
    mask_has_transparent_pixel: bool | None = None,
    image_has_transparent_pixel: bool | None = None,
) -> list[Violation]:
    """Every rule an edit_image call breaks, parameters and input images alike.

    Image rules follow the contract's order: count, format, bytes, shape, mask.
    The two `*_has_transparent_pixel` answers need a decode, so callers compute
    them only when the cheaper checks passed (None means "not checked").
    """
    out: list[Violation] = []
    spec = _spec_for(params, "edit", out)
    if spec is None:
        return out
    _common(params, "edit", spec, out)

    if not 1 <= len(images) <= spec.edit_max_images:
        span = "exactly 1 image" if spec.edit_max_images == 1 else (
            f"1 to {spec.edit_max_images} images")
        out.append(Violation(
            "images", f"<{len(images)} images>",
            f"{spec.name} edits take {span}; {len(images)} given."))
        return out

    limit = spec.edit_max_bytes or max_image_bytes
    formats = "PNG" if spec.edit_formats == ("png",) else ACCEPTED_FORMATS_TEXT
    for i, facts in enumerate(images):
        label = f"images[{i}]"
        if facts.format not in spec.edit_formats:
            out.append(Violation(
                label, facts.detected,
                f"{label} is {facts.detected.upper()}; {spec.name} edits accept {formats}."))
        elif facts.bytes >= limit:
            out.append(Violation(
                label, facts.bytes,
                f"{label} has {facts.bytes} bytes; {spec.name} accepts less than {limit} "
                f"bytes ({limit // MIB} MiB) per image."))
        elif spec.edit_square_png and facts.width != facts.height:
            out.append(Violation(
                label, f"{facts.width}x{facts.height}",
                f"{label} is {facts.width}x{facts.height}; {spec.name} edits need a square PNG."))

    if mask is not None:
        _check_mask(mask, images[0], mask_has_transparent_pixel, out)
    elif spec.name == "dall-e-2" and image_has_transparent_pixel is False:
        out.append(Violation(
            "mask", None,
            "dall-e-2 edits repaint the transparent area: give a mask, or an image with "
            "fully transparent pixels where the change should go."))
    return out


def _check_mask(mask: ImageFacts, first: ImageFacts, transparent: bool | None,
                out: list[Violation]) -> None:
    if mask.format != "png":
        out.append(Violation("mask", mask.detected,
                             f"mask is {mask.detected.upper()}; a mask must be a PNG with alpha."))
    elif mask.bytes >= MASK_MAX_BYTES:
        out.append(Violation("mask", mask.bytes,
                             f"mask has {mask.bytes} bytes; a mask must be under 4 MiB."))
    elif (mask.width, mask.height) != (first.width, first.height):
        out.append(Violation(
            "mask", f"{mask.width}x{mask.height}",
            f"mask is {mask.width}x{mask.height} but the first image is "
            f"{first.width}x{first.height}; they must be the same size."))
    elif not mask.has_alpha:
        out.append(Violation(
            "mask", "no alpha",
            "mask has no alpha channel; save it as RGBA PNG with the area to edit transparent."))
    elif transparent is False:
        out.append(Violation(
            "mask", "no transparent pixel",
            "mask has no fully transparent pixel; make the area to edit transparent (alpha 0)."))
