"""Figure 5: listing the first page of resources and reading one image, 10,000 images vs 1.

The big store is filled through ImageStore's schema in one transaction (saving 10,000
images one by one, each fsynced, would take minutes); every row has a real small file.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import anyio
from harness import EmulatorProcess, Plan, Row, median, server_env, stdio_session, timed


def _tiny_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (90, 120, 200)).save(buf, "PNG")
    return buf.getvalue()


async def populate(work: Path, count: int) -> str:
    """A store of `count` small images; returns the id of one in the middle to read."""
    import hashlib

    from ttapi_mcp.store import ImageStore
    from ttapi_mcp.store.core import _IMAGE_COLUMNS

    out = work / "out"
    data = _tiny_png()
    digest = hashlib.sha256(data).hexdigest()
    rows = []
    now = time.time() - count
    for i in range(count):
        path = out / f"bench-{i:05d}.png"
        rows.append((f"img{i:08d}", str(path), digest, len(data), "image/png", 8, 8,
                     "gpt-image-1", f"benchmark image {i}", '{"size": "8x8"}', None, None, None,
                     None, None, now + i))
    async with ImageStore(out, work / "store.sqlite3") as store:
        def write_files() -> None:
            for row in rows:
                Path(row[1]).write_bytes(data)

        await anyio.to_thread.run_sync(write_files)
        sql = f"INSERT INTO images ({_IMAGE_COLUMNS}) VALUES ({', '.join('?' * 16)})"
        await store._db.run(lambda c: c.executemany(sql, rows))
        if await store.count_images() != count:
            raise RuntimeError("the store was not populated")
    return str(rows[count // 2][0])


async def store_scale(emulator: EmulatorProcess, work: Path, plan: Plan) -> list[Row]:
    small, big = work / "store-small", work / "store-big"
    small_id = await populate(small, 1)
    big_id = await populate(big, plan.store_images)
    async with stdio_session(server_env(emulator, small)) as (few, _), \
            stdio_session(server_env(emulator, big)) as (many, _):
        async def listing(client: object) -> None:
            result = await client.list_resources(cache_mode="bypass")  # type: ignore[attr-defined]
            if not result.resources:
                raise RuntimeError("resources/list returned nothing")

        async def reading(client: object, image_id: str) -> None:
            result = await client.read_resource(  # type: ignore[attr-defined]
                f"ttapi://images/{image_id}", cache_mode="bypass")
            if not result.contents:
                raise RuntimeError("resources/read returned nothing")

        for client, image_id in ((few, small_id), (many, big_id)):
            await listing(client)
            await reading(client, image_id)
        times: dict[str, list[float]] = {"ls1": [], "lsN": [], "rd1": [], "rdN": []}
        for _ in range(max(10, plan.reps * 3)):
            times["ls1"].append(await timed(lambda: listing(few)))
            times["lsN"].append(await timed(lambda: listing(many)))
            times["rd1"].append(await timed(lambda: reading(few, small_id)))
            times["rdN"].append(await timed(lambda: reading(many, big_id)))
    rows = []
    for label, key in (("list first page of resources", "ls"), ("read one image", "rd")):
        few_s, many_s = median(times[key + "1"]), median(times[key + "N"])
        ratio = many_s / few_s
        rows.append(Row(f"5. {label}, {plan.store_images:,} images (stdio)",
                        f"{many_s * 1000:.1f} ms", f"{few_s * 1000:.1f} ms with 1 image",
                        ratio, "<= 2x", ratio <= 2.0))
    return rows
