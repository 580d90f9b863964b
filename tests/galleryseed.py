"""Fill a store with many images quickly, for gallery tests and figures.

A few real files are saved through the store; the rest are rows that point at them
(their own ids, prompts, models and times), inserted in one transaction so 10,000 take
a fraction of a second. The FTS triggers index them like any saved image.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from ttapi_mcp.store import ImageStore

MODELS = ("gpt-image-1", "dall-e-3", "gpt-image-1-mini")
NEEDLE = "a zebra reading a newspaper in the rain"


def _png(i: int) -> bytes:
    image = Image.new("RGB", (640, 480), ((i * 70) % 256, (i * 130) % 256, 180))
    ImageDraw.Draw(image).text((20, 20), f"seed {i}", fill=(255, 255, 255))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


async def seed_store(settings: Any, count: int, start: float = 1_700_000_000.0) -> list[str]:
    """``count`` images, one a second from ``start``; the one at count//2 has NEEDLE."""
    url = getattr(settings, "database_url_value", lambda: None)()
    async with ImageStore(settings.output_dir, settings.store_path, database_url=url) as store:
        real = [await store.save_image(_png(i), model=MODELS[i % 3], prompt=f"seed {i}",
                                       parameters={"size": "640x480"}) for i in range(3)]
        ids: list[str] = []
        rows = []
        for i in range(count):
            base = real[i % 3]
            image_id = f"seed{i:07d}"
            prompt = NEEDLE if i == count // 2 else f"lighthouse study number {i}"
            rows.append((image_id, str(base.path), base.sha256, base.bytes, base.mime,
                         base.width, base.height, MODELS[i % 3], prompt, "{}",
                         f"job-{i // 4}", start + i))
            ids.append(image_id)

        def fill(conn: Any) -> None:
            conn.execute("DELETE FROM images")
            conn.executemany(
                "INSERT INTO images (id, path, sha256, bytes, mime, width, height, model, "
                "prompt, parameters, job_id, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)

        await store._db.run(fill)
    return ids


def thumbs_folder(settings: Any) -> Path:
    return Path(settings.store_path).parent / "thumbs"
