"""Request rules of the contract (§4, §5), encoded independently of the client's catalog.

Every check raises ApiError with the field as `param`, so a mismatch between the client's
validation and this one surfaces as a failing test instead of a silent difference.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from .shapes import ApiError

Route = Literal["E1", "E2"]

# gpt-image-1-mini is on no TTAPI page (§11.3): refused as an invalid model.
GPT_MODELS = ("gpt-image-1", "gpt-image-1.5", "gpt-image-2")
DALLE_MODELS = ("dall-e-2", "dall-e-3")
GPT_SIZES = ("1024x1024", "1024x1536", "1536x1024", "auto")
SIZES = {"dall-e-2": ("256x256", "512x512", "1024x1024"),
         "dall-e-3": ("1024x1024", "1792x1024", "1024x1792")}
QUALITIES = {"gpt": ("low", "medium", "high", "auto"), "dall-e-2": ("standard", "auto"),
             "dall-e-3": ("standard", "hd", "auto")}
MAX_PROMPT = {"gpt": 32000, "dall-e-2": 1000, "dall-e-3": 4000}

E1_FIELDS = frozenset({
    "prompt", "model", "n", "size", "quality", "style", "background", "moderation",
    "output_format", "output_compression", "response_format", "stream", "partial_images", "user",
})
E2_FIELDS = frozenset({
    "prompt", "model", "n", "size", "quality", "background", "moderation", "output_format",
    "output_compression", "response_format", "input_fidelity", "stream", "partial_images", "user",
})
GPT_ONLY = ("background", "moderation", "output_format", "output_compression", "input_fidelity",
            "stream", "partial_images")
E3_SIZE_MESSAGE = ('For the dall-e-3 model, "size" must be one of 1024x1024, 1792x1024, '
                   'or 1024x1792.')
TOKENS_PER_IMAGE = {
    "low": {"1024x1024": 272, "1024x1536": 408, "1536x1024": 400},
    "medium": {"1024x1024": 1056, "1024x1536": 1584, "1536x1024": 1568},
    "high": {"1024x1024": 4160, "1024x1536": 6240, "1536x1024": 6208},
}
IMAGE_INPUT_TOKENS = 323


@dataclass
class ImageParams:
    """A validated generation or edit request with every default resolved."""

    model: str
    prompt: str
    n: int = 1
    size: str = "1024x1024"  # "auto" until an edit resolves it from the first image
    quality: str = "standard"
    style: str | None = None
    background: str = "opaque"
    output_format: str = "png"
    output_compression: int = 100
    response_format: str = "b64_json"
    stream: bool = False  # §11.4: server-sent events
    partial_images: int = 0

    @property
    def is_gpt(self) -> bool:
        return self.model in GPT_MODELS

    @property
    def dims(self) -> tuple[int, int]:
        w, h = self.size.split("x")
        return int(w), int(h)


def bad(param: str | None, message: str, code: str = "invalid_value") -> ApiError:
    """A 400 in the §6 style."""
    return ApiError(400, message, code=code, param=param)


def _quote_list(values: tuple[str, ...]) -> str:
    quoted = [f"'{v}'" for v in values]
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}" if len(quoted) > 1 else quoted[0]


def _invalid(param: str, value: object, allowed: tuple[str, ...]) -> ApiError:
    return bad(param, f"Invalid value: '{value}'. Supported values are: {_quote_list(allowed)}.")


def expect_str(body: dict[str, Any], name: str) -> str | None:
    """Strict string type; a wrong type is a 400 naming the field."""
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise bad(name, f"Invalid type for '{name}': expected a string, "
                        f"but got {type(value).__name__} instead.")
    return value


def expect_int(body: dict[str, Any], name: str) -> int | None:
    """Strict integer type (booleans and numeric strings are refused)."""
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise bad(name, f"Invalid type for '{name}': expected an integer, "
                        f"but got {type(value).__name__} instead.")
    return value


def expect_bool(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise bad(name, f"Invalid type for '{name}': expected a boolean, "
                        f"but got {type(value).__name__} instead.")
    return value


def check_prompt(prompt: str | None, limit: int) -> str:
    if not prompt:
        raise bad("prompt", "prompt is required and must not be empty.", "empty_string")
    if len(prompt) > limit:
        raise bad("prompt", f"Invalid 'prompt': string too long. Expected a string with maximum "
                            f"length {limit}, but got a string with length {len(prompt)} instead.",
                  "string_above_max_length")
    return prompt


PIXELS = (655_360, 8_294_400)
GPT2_SIZE_RULE = ("'auto' or WxH with both sides multiples of 16, long side <= 3840, "
                  "long/short <= 3 and 655,360 to 8,294,400 pixels")


def gpt2_size_ok(size: str) -> bool:
    """§11.3: the pixel-count rule of gpt-image-2 (and gpt-image-2-plus, §11.6)."""
    match = re.fullmatch(r"([1-9][0-9]*)x([1-9][0-9]*)", size)
    if not match:
        return False
    w, h = int(match.group(1)), int(match.group(2))
    long_side, short_side = max(w, h), min(w, h)
    return (w % 16 == 0 and h % 16 == 0 and long_side <= 3 * short_side
            and long_side <= 3840 and PIXELS[0] <= w * h <= PIXELS[1])


def _check_size(model: str, size: str) -> None:
    if model == "gpt-image-2":
        if size != "auto" and not gpt2_size_ok(size):
            raise bad("size", f"Invalid value: '{size}'. Supported values are {GPT2_SIZE_RULE}.")
        return
    allowed = GPT_SIZES if model in GPT_MODELS else SIZES[model]
    if size not in allowed:
        raise _invalid("size", size, allowed)


def _reject_field(name: str, model: str) -> ApiError:
    return bad(name, f"Unknown parameter: '{name}' is not supported with model '{model}'.",
               "unknown_parameter")


def _check_choice(body: dict[str, Any], name: str, allowed: tuple[str, ...]) -> str | None:
    value = expect_str(body, name)
    if value is not None and value not in allowed:
        raise _invalid(name, value, allowed)
    return value


def validate_images_request(raw: dict[str, Any], route: Route) -> ImageParams:
    """Validate an E1 (JSON) or E2 (already type-converted form) body; first failure wins."""
    body = {k: v for k, v in raw.items() if v is not None}
    known = E1_FIELDS if route == "E1" else E2_FIELDS
    for name in body:
        if name not in known:
            raise bad(name, f"Unknown parameter: '{name}'.", "unknown_parameter")
    for name in ("prompt", "model", "size", "quality", "style", "background", "moderation",
                 "output_format", "response_format", "input_fidelity", "user"):
        expect_str(body, name)
    for name in ("n", "output_compression", "partial_images"):
        expect_int(body, name)
    expect_bool(body, "stream")

    model = body.get("model")
    if model is None:
        model = "gpt-image-1" if any(k in body for k in GPT_ONLY) else "dall-e-2"
    if model not in GPT_MODELS + DALLE_MODELS:
        raise _invalid("model", model, GPT_MODELS + DALLE_MODELS)
    if route == "E2" and model == "dall-e-3":
        raise bad("model", "Invalid value: 'dall-e-3'. Image edits support 'gpt-image-1' and "
                           "'dall-e-2' (plus newer GPT image models), not 'dall-e-3'.")
    kind = "gpt" if model in GPT_MODELS else model
    if kind != "gpt":
        for name in GPT_ONLY:
            if name in body:
                raise _reject_field(name, model)
    if "style" in body and model != "dall-e-3":
        raise _reject_field("style", model)
    if "input_fidelity" in body and model == "gpt-image-2":
        raise _reject_field("input_fidelity", model)

    prompt = check_prompt(body.get("prompt"), MAX_PROMPT[kind])
    params = ImageParams(model=model, prompt=prompt)
    n = body.get("n", 1)
    if not 1 <= n <= 10:
        raise bad("n", f"Invalid 'n': {n}. Expected a value between 1 and 10.")
    if model == "dall-e-3" and n != 1:
        raise bad("n", "Invalid 'n': dall-e-3 only supports n=1.")
    params.n = n
    size = body.get("size", "auto" if kind == "gpt" else "1024x1024")
    _check_size(model, size)
    params.size = "1024x1024" if (size == "auto" and route == "E1") else size
    quality = _check_choice(body, "quality", QUALITIES[kind]) or "auto"
    params.quality = ("high" if quality == "auto" else quality) if kind == "gpt" else (
        "standard" if quality == "auto" else quality)
    if model == "dall-e-3":
        params.style = _check_choice(body, "style", ("vivid", "natural")) or "vivid"
    if kind == "gpt":
        _check_gpt_options(body, params)
    else:
        response_format = _check_choice(body, "response_format", ("url", "b64_json"))
        params.response_format = response_format or "url"
    return params


def _check_gpt_options(body: dict[str, Any], params: ImageParams) -> None:
    background = _check_choice(body, "background", ("transparent", "opaque", "auto"))
    fmt = _check_choice(body, "output_format", ("png", "jpeg", "webp"))
    _check_choice(body, "moderation", ("low", "auto"))
    _check_choice(body, "input_fidelity", ("high", "low"))
    compression = body.get("output_compression")
    if compression is not None and not 0 <= compression <= 100:
        raise bad("output_compression", f"Invalid 'output_compression': {compression}. "
                                        "Expected a value between 0 and 100.")
    response_format = _check_choice(body, "response_format", ("url", "b64_json"))
    if response_format == "url":
        raise bad("response_format", f"Invalid value: 'url'. Model '{params.model}' always "
                                     "returns b64_json; omit response_format.")
    partial = body.get("partial_images")
    if partial is not None and not 0 <= partial <= 3:
        raise bad("partial_images", f"Invalid 'partial_images': {partial}. Expected 0 to 3.")
    if partial and body.get("stream") is not True:
        raise bad("partial_images", "partial_images needs stream: true.")
    params.stream = body.get("stream") is True
    params.partial_images = partial or 0
    if background == "transparent" and params.model == "gpt-image-2":
        raise bad("background", "Transparent background is not supported by gpt-image-2.")
    if background == "transparent" and fmt == "jpeg":
        raise bad("background", "Transparent background requires output_format 'png' or 'webp'.")
    if compression is not None and compression < 100 and fmt in (None, "png"):
        raise bad("output_compression", "output_compression below 100 requires output_format "
                                        "'jpeg' or 'webp'.")
    params.background = "transparent" if background == "transparent" else "opaque"
    params.output_format = fmt or "png"
    params.output_compression = 100 if compression is None else compression


def validate_e3(raw: dict[str, Any]) -> ImageParams:
    """The legacy dall-e-3 route: size required, dall-e-3 only, n = 1."""
    body = {k: v for k, v in raw.items() if v is not None}
    for name in ("prompt", "model", "size", "quality"):
        expect_str(body, name)
    expect_int(body, "n")
    model = body.get("model", "dall-e-3")
    if model != "dall-e-3":
        raise bad("model", f"Invalid model '{model}': this route only serves dall-e-3; "
                           "use /v1/images/generations for other models.")
    prompt = check_prompt(body.get("prompt"), 4000)
    size = body.get("size")
    if size not in SIZES["dall-e-3"]:
        raise bad("size", E3_SIZE_MESSAGE)
    if body.get("n", 1) != 1:
        raise bad("n", "Invalid 'n': dall-e-3 only supports n=1.")
    quality = _check_choice(body, "quality", ("standard", "hd", "auto")) or "standard"
    return ImageParams(model="dall-e-3", prompt=prompt, size=size, style="vivid",
                       quality="standard" if quality == "auto" else quality,
                       response_format="url")


def usage_for(params: ImageParams, input_images: int = 0) -> dict[str, Any]:
    """The §4.1 token arithmetic: output per image by quality and size, input by chars."""
    text_tokens = math.ceil(len(params.prompt) / 4)
    image_tokens = IMAGE_INPUT_TOKENS * input_images
    table = TOKENS_PER_IMAGE.get(params.quality, TOKENS_PER_IMAGE["high"])
    per_image = table.get(params.size)
    if per_image is None:
        w, h = params.dims
        per_image = round(table["1024x1024"] * w * h / (1024 * 1024))
    output = per_image * params.n
    return {
        "input_tokens": text_tokens + image_tokens,
        "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": image_tokens},
        "output_tokens": output,
        "total_tokens": text_tokens + image_tokens + output,
    }
