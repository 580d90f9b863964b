"""Small inline previews of saved images.

Full images are never inlined by default: clients cap tool results (about 1 MB or
25k tokens), so a preview is shrunk to a long edge of at most ``thumbnail_size``
pixels and re-encoded, lowering quality and then size until its base64 form fits
``max_b64_bytes``. Opaque images become JPEG (encoding a 512 px thumbnail takes under
a millisecond, WebP about 6 ms); only images with transparency become WebP, which
keeps it. Pillow work is CPU-bound, so callers run it in a worker thread through
:func:`make_preview`.
"""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread

MAX_PREVIEW_B64_BYTES = 100_000
"""Upper bound for one preview's base64 text."""

_QUALITIES = (80, 65, 50, 35)
_MIN_EDGE = 32
PREVIEW_THREADS = 2
"""Threads that do all preview work (see :func:`make_preview` for why so few)."""
_PREVIEW_THREADS = ThreadPoolExecutor(PREVIEW_THREADS, thread_name_prefix="ttapi-preview")


@dataclass(frozen=True)
class Preview:
    """An encoded preview ready to become an MCP image content block."""

    data_b64: str
    mime: str
    width: int
    height: int


def _shrink(image: Any, edge: int) -> Any:
    """A new image whose long edge is at most ``edge``.

    A box reduce by the integer factor first, then Lanczos on what remains: several times
    faster than Lanczos over the full image, and no different at thumbnail size. When the
    factor divides the size exactly (1024 -> 512), the reduce alone is the answer: the
    Lanczos pass would only copy it (another megabyte at the call's memory peak).
    """
    from PIL import Image

    width, height = image.size
    scale = edge / max(width, height)
    if scale >= 1:
        return image.copy()
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    factor = width // size[0]
    if factor > 1 and (width, height) == (size[0] * factor, size[1] * factor):
        return image.reduce(factor)
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=1.0)


def _encode(image: object, fmt: str, quality: int) -> bytes:
    from PIL import Image

    assert isinstance(image, Image.Image)
    buf = io.BytesIO()
    if fmt == "WEBP":
        image.save(buf, format="WEBP", quality=quality, method=1)
    else:  # thumbnail_sync converted it to RGB already
        image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _webp_available() -> bool:
    from PIL import features

    return bool(features.check("webp"))


def thumbnail_sync(
    source: Path | bytes, max_edge: int, max_b64_bytes: int = MAX_PREVIEW_B64_BYTES
) -> Preview:
    """Shrink and re-encode an image until its base64 text fits ``max_b64_bytes``.

    Raises ``ValueError`` when the bytes are not a decodable image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        opened = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        if opened.format == "JPEG":  # decode at 1/2, 1/4 or 1/8 scale: the DCT allows it
            opened.draft("RGB", (max_edge, max_edge))
        opened.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"cannot decode image for preview: {exc}") from exc
    with opened:  # the WebP codec loads only for an image with transparency
        alpha = (opened.mode in ("RGBA", "LA", "PA") or "transparency" in opened.info
                 ) and _webp_available()
        fmt, mime, mode = ("WEBP", "image/webp", "RGBA") if alpha else ("JPEG", "image/jpeg",
                                                                         "RGB")
        base = opened if opened.mode == mode else opened.convert(mode)
    edge = max(_MIN_EDGE, max_edge)
    last: bytes = b""
    while True:
        image = _shrink(base, edge)
        for quality in _QUALITIES:
            last = _encode(image, fmt, quality)
            if _b64_len(len(last)) <= max_b64_bytes:
                return Preview(base64.b64encode(last).decode("ascii"), mime, *image.size)
        if edge <= _MIN_EDGE:
            raise ValueError("image cannot be reduced below the preview size bound")
        edge = max(_MIN_EDGE, int(edge * 0.7))


def full_sync(path: Path) -> str:
    """Base64 of the whole file, for ``preview="full"``."""
    return base64.b64encode(path.read_bytes()).decode("ascii")


def _b64_len(raw_len: int) -> int:
    return 4 * ((raw_len + 2) // 3)


def start_preview(
    source: Path | bytes, max_edge: int, max_b64_bytes: int = MAX_PREVIEW_B64_BYTES
) -> Future[Preview]:
    """Begin a thumbnail on one of the preview threads; :func:`wait_preview` collects it.

    Pillow runs on a few dedicated threads, not anyio's shared pool of up to 40: glibc
    gives each thread that allocates large image buffers its own arena and keeps the
    arena's peak, so previews spread over the shared pool made a busy server's memory
    grow call after call (about 2x in the load test); on two threads it stays flat.
    """
    return _PREVIEW_THREADS.submit(thumbnail_sync, source, max_edge, max_b64_bytes)


def run_on_preview_threads(fn: Callable[..., Preview], *args: Any) -> Future[Preview]:
    """Run other Pillow work (the contact sheet) on the same few preview threads."""
    return _PREVIEW_THREADS.submit(fn, *args)


async def wait_preview(future: Future[Preview]) -> Preview:
    """The finished thumbnail (or its ``ValueError``), without blocking the event loop.

    The server runs on asyncio, which can await a thread's future directly; parking a
    worker thread on ``future.result()`` cost a thread hand-off per image.
    """
    return await asyncio.wrap_future(future)


async def make_preview(
    source: Path | bytes, max_edge: int, max_b64_bytes: int = MAX_PREVIEW_B64_BYTES
) -> Preview:
    """Thumbnail on one of the preview threads, so the event loop keeps serving requests."""
    return await wait_preview(start_preview(source, max_edge, max_b64_bytes))


async def read_full(path: Path) -> str:
    """Whole-file base64 in a worker thread."""
    return await anyio.to_thread.run_sync(full_sync, path)
