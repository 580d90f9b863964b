"""Thumbnails for the viewer and the gallery, made once and kept beside the store.

A gallery page shows dozens of images; decoding every original on every page would make
10,000 images scroll like treacle. Each (image, edge) thumbnail is made once, written
atomically under ``<store folder>/thumbs/`` (never in the output folder, whose listing is
the person's), and read back as bytes afterwards.
"""

from __future__ import annotations

import base64
import os
import tempfile
from pathlib import Path

from ttapi_mcp.previews import Preview, run_on_preview_threads, thumbnail_sync, wait_preview

GALLERY_EDGE = 256
GALLERY_MAX_B64 = 24_000
VIEWER_EDGE = 1024
VIEWER_MAX_B64 = 300_000

_EXT = {"image/jpeg": ".jpg", "image/webp": ".webp"}
_MIME = {v: k for k, v in _EXT.items()}


class ThumbCache:
    """Thumbnails of stored images under one folder, by image id and long edge."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _candidates(self, image_id: str, edge: int) -> list[Path]:
        safe = "".join(c for c in image_id if c.isalnum() or c in "-_")
        base = self.folder / safe[:2] / f"{safe}-{edge}"
        return [base.with_suffix(ext) for ext in _EXT.values()]

    def cached_sync(self, image_id: str, edge: int) -> Preview | None:
        for path in self._candidates(image_id, edge):
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            return Preview(base64.b64encode(data).decode("ascii"), _MIME[path.suffix], 0, 0)
        return None

    def make_sync(self, image_id: str, source: Path, edge: int, max_b64: int) -> Preview:
        """The cached thumbnail, or a new one made from ``source`` and written to the cache."""
        hit = self.cached_sync(image_id, edge)
        if hit is not None:
            return hit
        preview = thumbnail_sync(source, edge, max_b64)
        target = next(p for p in self._candidates(image_id, edge)
                      if p.suffix == _EXT[preview.mime])
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(base64.b64decode(preview.data_b64))
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return preview

    async def get(self, image_id: str, source: Path, edge: int, max_b64: int) -> Preview:
        """Off the event loop, on the preview threads."""
        return await wait_preview(
            run_on_preview_threads(self.make_sync, image_id, source, edge, max_b64))
