"""Edit-image rules of the contract (§8): count, declared type, sniffed format, bytes, shape, mask.

The checks run in the contract's order and the first failure is reported, so the client's
own pre-upload validation can be compared with this one.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

from .shapes import ApiError

ALLOWED_TYPES = ("image/png", "image/jpeg", "image/webp")


@dataclass
class Upload:
    """One file part of a multipart edit request."""

    field: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class Limits:
    gpt_image_bytes: int
    dalle2_image_bytes: int
    mask_bytes: int


def sniff(data: bytes) -> str | None:
    """Format from the magic bytes; None for anything but PNG, JPEG and WebP."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and data[12:16] in (b"VP8 ", b"VP8L", b"VP8X"):
        return "webp"
    return None


def _bad(param: str, message: str) -> ApiError:
    return ApiError(400, message, code="invalid_image", param=param)


def _open(data: bytes, param: str) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data))
    except Exception as exc:  # Pillow raises several types for broken files
        raise _bad(param, f"Invalid file '{param}': the image could not be read.") from exc


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or im.has_transparency_data


def _has_clear_pixel(im: Image.Image) -> bool:
    extrema = im.convert("RGBA").getchannel("A").getextrema()
    return bool(extrema[0] == 0)


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB"


def check_edit_images(
    images: list[Upload], mask: Upload | None, model: str, limits: Limits
) -> tuple[int, int]:
    """Apply §8 in order; return the first image's width and height."""
    dalle2 = model == "dall-e-2"
    if not images:
        raise _bad("image", "Missing required parameter: 'image'.")
    if dalle2 and len(images) != 1:
        raise _bad("image", f"dall-e-2 edits take exactly 1 image, got {len(images)}.")
    if len(images) > 16:
        raise _bad("image", f"Too many images: {len(images)}. At most 16 are allowed.")
    for up in images + ([mask] if mask else []):
        param = "mask" if up is mask else "image"
        declared = (up.content_type or "").split(";")[0].strip().lower()
        if declared not in ALLOWED_TYPES:
            raise _bad(param, f"Invalid file '{param}': unsupported mimetype ('{declared}'). "
                              "Supported file formats are 'image/jpeg', 'image/png', and "
                              "'image/webp'.")
    for up in images:
        fmt = sniff(up.data)
        if fmt is None:
            raise _bad("image", "Invalid file 'image': the bytes are not PNG, JPEG or WebP.")
        if dalle2 and fmt != "png":
            raise _bad("image", f"dall-e-2 edits need a PNG image, got {fmt.upper()}.")
    limit = limits.dalle2_image_bytes if dalle2 else limits.gpt_image_bytes
    for up in images:
        if len(up.data) >= limit:
            raise _bad("image", f"Image too large: {len(up.data)} bytes; each image must be "
                                f"smaller than {_mib(limit)}.")
    first = _open(images[0].data, "image")
    width, height = first.size
    if dalle2 and width != height:
        raise _bad("image", f"dall-e-2 edits need a square image, got {width}x{height}.")
    if mask is not None:
        _check_mask(mask, (width, height), limits)
    elif dalle2 and not (_has_alpha(first) and _has_clear_pixel(first)):
        raise _bad("image", "Without a mask, the dall-e-2 image must contain fully transparent "
                            "pixels marking the area to edit.")
    return width, height


def _check_mask(mask: Upload, size: tuple[int, int], limits: Limits) -> None:
    if sniff(mask.data) != "png":
        raise _bad("mask", "Invalid file 'mask': the mask must be a PNG.")
    if len(mask.data) >= limits.mask_bytes:
        raise _bad("mask", f"Mask too large: {len(mask.data)} bytes; it must be smaller than "
                           f"{_mib(limits.mask_bytes)}.")
    im = _open(mask.data, "mask")
    if im.size != size:
        raise _bad("mask", f"Invalid mask: its size {im.size[0]}x{im.size[1]} differs from the "
                           f"first image's {size[0]}x{size[1]}.")
    if not _has_alpha(im):
        raise _bad("mask", "Invalid mask: it needs an alpha channel (RGBA, LA or a palette "
                           "with transparency).")
    if not _has_clear_pixel(im):
        raise _bad("mask", "Invalid mask: no fully transparent pixel marks an area to edit.")


def closest_size(width: int, height: int) -> str:
    """`size: auto` on edits: the GPT size whose aspect ratio is nearest the first image's."""
    ratio = width / height
    options = {"1024x1024": 1.0, "1536x1024": 1.5, "1024x1536": 1024 / 1536}
    return min(options, key=lambda k: abs(options[k] - ratio))
