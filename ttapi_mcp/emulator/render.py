"""Deterministic placeholder images that show what was asked for.

A person looking at a demo result sees the prompt, the model and the index, so the picture
documents the request. Rendering is a flat fill plus text (fast), with a small cache.
"""

from __future__ import annotations

import base64
import hashlib
import io
import random
import textwrap
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from PIL import Image, ImageDraw, ImageFont

_CACHE_SIZE = 64
T = TypeVar("T")
_cache: OrderedDict[tuple[object, ...], bytes] = OrderedDict()
_b64_cache: OrderedDict[tuple[object, ...], bytes] = OrderedDict()
_lock = threading.Lock()
_fonts: dict[int, ImageFont.FreeTypeFont | ImageFont.ImageFont] = {}

MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


@dataclass(frozen=True)
class RenderSpec:
    """Everything that determines the output bytes."""

    prompt: str
    model: str
    width: int
    height: int
    output_format: str = "png"  # png | jpeg | webp
    transparent: bool = False
    compression: int = 100
    index: int = 1
    count: int = 1
    # Blend in deterministic noise so PNGs are as large as real results (benchmarks).
    texture: bool = False


_TEXTURE_ALPHA = 0.15


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if size not in _fonts:
        _fonts[size] = ImageFont.load_default(size=size)
    return _fonts[size]


def _colour(prompt: str, model: str) -> tuple[int, int, int]:
    digest = hashlib.sha256(f"{model}\n{prompt}".encode()).digest()
    return (64 + digest[0] // 2, 64 + digest[1] // 2, 64 + digest[2] // 2)


def _draw(spec: RenderSpec) -> Image.Image:
    w, h = spec.width, spec.height
    fill = _colour(spec.prompt, spec.model)
    if spec.transparent:
        im = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        panel: tuple[int, ...] = (*fill, 255)
    else:
        im = Image.new("RGB", (w, h), fill)
        panel = tuple(max(0, c - 40) for c in fill)
    draw = ImageDraw.Draw(im)
    margin = max(4, min(w, h) // 16)
    draw.rectangle((margin, margin, w - margin - 1, h - margin - 1), fill=panel)
    size = max(10, min(w, h) // 24)
    font = _font(size)
    width_chars = max(8, int((w - 4 * margin) / (size * 0.52)))
    max_lines = max(1, int((h - 4 * margin) / (size * 1.3)) - 3)
    lines = textwrap.wrap(spec.prompt, width_chars)[:max_lines] or [""]
    if len(textwrap.wrap(spec.prompt, width_chars)) > max_lines:
        lines[-1] = lines[-1][: max(0, width_chars - 1)] + "…"
    header = f"{spec.model}  {spec.index}/{spec.count}  {w}x{h}"
    x, y = 2 * margin, 2 * margin
    draw.text((x, y), header, fill=(255, 255, 160, 255), font=font)
    y += int(size * 1.8)
    for line in lines:
        draw.text((x, y), line, fill=(255, 255, 255, 255), font=font)
        y += int(size * 1.3)
    return _textured(im, spec) if spec.texture else im


def _textured(im: Image.Image, spec: RenderSpec) -> Image.Image:
    """Noise under the text: flat fills compress to ~30 KB, real results weigh megabytes."""
    w, h = im.size
    seed = int.from_bytes(hashlib.sha256(f"{spec.prompt}\n{spec.index}".encode()).digest()[:8])
    noise = Image.frombytes("RGB", (w, h), random.Random(seed).randbytes(w * h * 3))
    blended = Image.blend(im.convert("RGB"), noise, _TEXTURE_ALPHA)
    if im.mode == "RGBA":
        blended.putalpha(im.getchannel("A"))
    return blended


def _encode(im: Image.Image, spec: RenderSpec) -> bytes:
    buf = io.BytesIO()
    quality = max(1, min(100, spec.compression))
    if spec.output_format == "jpeg":
        im.convert("RGB").save(buf, "JPEG", quality=quality)
    elif spec.output_format == "webp":
        im.save(buf, "WEBP", quality=quality, lossless=spec.compression >= 100, method=0)
    else:
        im.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _key(spec: RenderSpec) -> tuple[object, ...]:
    return (spec.prompt, spec.model, spec.width, spec.height, spec.output_format,
            spec.transparent, spec.compression, spec.index, spec.count, spec.texture)


def _cached(cache: OrderedDict[tuple[object, ...], T], key: tuple[object, ...],
            make: Callable[[], T]) -> T:
    with _lock:
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
    value = make()
    with _lock:
        cache[key] = value
        while len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)
    return value


def render(spec: RenderSpec) -> bytes:
    """Encoded image bytes for a spec; identical specs return identical bytes."""
    return _cached(_cache, _key(spec), lambda: _encode(_draw(spec), spec))


def render_b64_json(spec: RenderSpec) -> bytes:
    """The base64 text of :func:`render` as a JSON string value (quotes included), cached
    too: a repeated answer costs no encoding and no escaping, so the emulator's share of a
    benchmark stays small and constant."""
    return _cached(_b64_cache, _key(spec), lambda: b'"' + base64.b64encode(render(spec)) + b'"')
