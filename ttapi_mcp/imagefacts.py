"""What an image file is, read from its bytes, never from its name.

Validation, storage and uploads all need the same few facts (format, size in
bytes, dimensions, alpha). They come from the file header alone, so checking a
25 MB upload or a hostile "PNG" costs a few dozen bytes of reading and never a
decode: Pillow is only needed for the one question a header cannot answer
(does a mask have a fully transparent pixel?).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

ImageFormat = Literal["png", "jpeg", "webp"]

MIME_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
EXTENSIONS: dict[str, str] = {"png": "png", "jpeg": "jpg", "webp": "webp"}
ACCEPTED_FORMATS_TEXT = "PNG, JPEG or WebP"

# Enough for every header we parse; JPEG dimensions may sit later (after EXIF),
# so sniff_file reads further for JPEGs only.
HEAD_BYTES = 64
_JPEG_SCAN_BYTES = 1 << 20

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ImageFacts(BaseModel):
    """The facts about one image that the per-model rules need."""

    format: ImageFormat | None
    """png, jpeg or webp; None for anything else (see `detected`)."""
    detected: str
    """What the bytes look like: png, jpeg, webp, gif, bmp, tiff, svg, heic or unknown."""
    bytes: int
    width: int | None = None
    height: int | None = None
    has_alpha: bool = False

    @property
    def mime(self) -> str | None:
        return MIME_TYPES.get(self.format) if self.format else None

    @property
    def extension(self) -> str | None:
        return EXTENSIONS.get(self.format) if self.format else None

    @property
    def pixels(self) -> int:
        return (self.width or 0) * (self.height or 0)


def _detect_other(head: bytes) -> str:
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:2] == b"BM":
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "heic"
    stripped = head.lstrip()
    if stripped[:5].lower() in (b"<?xml", b"<svg ") or stripped[:4].lower() == b"<svg":
        return "svg"
    return "unknown"


def _png_facts(head: bytes, size: int) -> ImageFacts:
    width = height = None
    has_alpha = False
    if len(head) >= 26 and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        has_alpha = head[25] in (4, 6)
    return ImageFacts(
        format="png", detected="png", bytes=size, width=width, height=height, has_alpha=has_alpha
    )


def _webp_facts(head: bytes, size: int) -> ImageFacts:
    chunk = head[12:16]
    width = height = None
    has_alpha = False
    if chunk == b"VP8X" and len(head) >= 30:
        has_alpha = bool(head[20] & 0x10)
        width = 1 + int.from_bytes(head[24:27], "little")
        height = 1 + int.from_bytes(head[27:30], "little")
    elif chunk == b"VP8L" and len(head) >= 25:
        bits = int.from_bytes(head[21:25], "little")
        width = (bits & 0x3FFF) + 1
        height = ((bits >> 14) & 0x3FFF) + 1
        has_alpha = bool((bits >> 28) & 1)
    elif chunk == b"VP8 " and len(head) >= 30:
        width = int.from_bytes(head[26:28], "little") & 0x3FFF
        height = int.from_bytes(head[28:30], "little") & 0x3FFF
    return ImageFacts(
        format="webp", detected="webp", bytes=size, width=width, height=height, has_alpha=has_alpha
    )


def _jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    """Walk JPEG segments to the first start-of-frame marker."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return width, height
        i += 2 + length
    return None


def sniff_bytes(head: bytes, size: int | None = None) -> ImageFacts:
    """Facts from the first bytes of an image; `size` is the whole length if known."""
    total = len(head) if size is None else size
    if head.startswith(_PNG_SIGNATURE):
        return _png_facts(head, total)
    if head[:3] == b"\xff\xd8\xff":
        dims = _jpeg_dimensions(head)
        width, height = dims if dims else (None, None)
        return ImageFacts(format="jpeg", detected="jpeg", bytes=total, width=width, height=height)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and head[12:16] in (b"VP8 ", b"VP8L", b"VP8X"):
        return _webp_facts(head, total)
    return ImageFacts(format=None, detected=_detect_other(head[:HEAD_BYTES]), bytes=total)


def sniff_file(path: str | os.PathLike[str]) -> ImageFacts:
    """Facts about a file on disk, reading only its header."""
    file_path = Path(path)
    size = file_path.stat().st_size
    with file_path.open("rb") as f:
        head = f.read(HEAD_BYTES)
        if head[:3] == b"\xff\xd8\xff":
            head += f.read(_JPEG_SCAN_BYTES)
    facts = sniff_bytes(head, size)
    if facts.format == "png" and not facts.has_alpha:
        facts.has_alpha = _png_has_trns(file_path)
    return facts


def _png_has_trns(path: Path) -> bool:
    """A palette or grey PNG carries transparency in a tRNS chunk, before IDAT."""
    with path.open("rb") as f:
        f.seek(8)
        for _ in range(1000):  # bounded: real files reach IDAT within a few chunks
            header = f.read(8)
            if len(header) < 8:
                return False
            length, kind = struct.unpack(">I4s", header)
            if kind == b"tRNS":
                return True
            if kind in (b"IDAT", b"IEND"):
                return False
            f.seek(length + 4, os.SEEK_CUR)
    return False


def has_transparent_pixel(path: str | os.PathLike[str]) -> bool:
    """True if at least one pixel is fully transparent (alpha 0): a mask's edit area.

    This decodes the image; callers check format, byte size and dimensions first.
    """
    from PIL import Image  # lazy: Pillow costs start-up time and is rarely needed

    with Image.open(path) as im:
        if not im.has_transparency_data:
            return False
        extrema = im.convert("RGBA").getchannel("A").getextrema()
        low = extrema[0]
        return bool(low == 0)
