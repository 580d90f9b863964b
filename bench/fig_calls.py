"""Figures 2 and 6: the cost of a generate_image call over stdio, and of its thumbnail.

The floor is what any correct client must do: POST to the emulator, decode the base64
(with the fastest strict decoder in the standard library), write the file durably
(write, fsync, rename, as the store does). The thumbnail floor adds the same preview
made the fastest way measured here: decode, one box reduce (``Image.reduce``) to the
preview's long edge, JPEG encode (see RESULTS.md for pyspng and ``Image.thumbnail``).
Floor and server calls alternate, so a busy moment on the machine hits both alike.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
from harness import (
    KEY,
    EmulatorProcess,
    Plan,
    Row,
    check_result,
    median,
    server_env,
    stdio_session,
    timed,
)

PROMPT = "a lighthouse at dusk, benchmark"


def gpt_body(n: int, size: str) -> dict[str, Any]:
    return {"model": "gpt-image-1", "prompt": PROMPT, "n": n, "size": size,
            "output_format": "png"}


THUMBNAIL_EDGE = 512  # the server's default thumbnail_size


def floor_thumbnail(data: bytes, edge: int = THUMBNAIL_EDGE) -> bytes:
    """The preview made the fastest way measured here: decode, box reduce, JPEG."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.load()
        factor = max(1, -(-max(image.size) // edge))  # ceil: the long edge fits in ``edge``
        small = image.reduce(factor) if factor > 1 else image
        buf = io.BytesIO()
        small.convert("RGB").save(buf, format="JPEG", quality=80)
    return buf.getvalue()


async def floor_call(http: httpx2.AsyncClient, folder: Path, n: int, size: str,
                     thumbnail: bool = False, fsyncs: list[float] | None = None) -> int:
    """POST, decode, write each image durably (and thumbnail it); returns the body size.

    ``fsyncs`` collects the seconds each ``os.fsync`` took: durability is the one cost
    here that a client without a disk to trust would not pay."""
    response = await http.post("/v1/images/generations", json=gpt_body(n, size))
    response.raise_for_status()
    for i, item in enumerate(response.json()["data"]):
        data = binascii.a2b_base64(item["b64_json"], strict_mode=True)
        tmp, final = folder / f".floor-{i}.tmp", folder / f"floor-{i}.png"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            started = time.perf_counter()
            os.fsync(f.fileno())
            if fsyncs is not None:
                fsyncs.append(time.perf_counter() - started)
        os.replace(tmp, final)
        if thumbnail:
            floor_thumbnail(data)
    return len(response.content)


def floor_client(emulator: EmulatorProcess) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(base_url=emulator.base_url, headers={"TT-API-KEY": KEY},
                              timeout=120.0)


def _row(label: str, ours: list[float], floor: list[float], limit: float, note: str = "",
         floor_name: str = "floor") -> Row:
    ratio = median(ours) / median(floor)
    return Row(label, f"{median(ours) * 1000:.0f} ms",
               f"{median(floor) * 1000:.0f} ms {floor_name}", ratio, f"<= {limit}x",
               ratio <= limit, note)


async def call_overhead(emulator: EmulatorProcess, work: Path, plan: Plan,
                        shared: dict[str, float]) -> list[Row]:
    folder = work / "floor"
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    env = server_env(emulator, work / "calls")
    async with stdio_session(env) as (client, _pid), floor_client(emulator) as http:
        for n in (1, 10):
            size = "1024x1024"

            async def ours(preview: str, n: int = n, size: str = size) -> None:
                check_result(await client.call_tool(
                    "generate_image", {**gpt_body(n, size), "preview": preview}))

            await ours("thumbnail")  # warm-up: caches in the emulator, lazy imports here
            await floor_call(http, folder, n, size, thumbnail=True)
            floor_s: list[float] = []
            thumb_floor_s: list[float] = []
            fsync_s: list[float] = []
            none_s: list[float] = []
            thumb_s: list[float] = []
            reps = plan.reps if n == 1 else max(1, plan.reps // 2)
            for _ in range(reps):
                floor_s.append(await timed(lambda n=n, size=size, f=fsync_s: floor_call(
                    http, folder, n, size, fsyncs=f)))
                none_s.append(await timed(lambda: ours("none")))
                thumb_floor_s.append(await timed(lambda n=n, size=size: floor_call(
                    http, folder, n, size, thumbnail=True)))
                thumb_s.append(await timed(lambda: ours("thumbnail")))
            emulator.clear_log()
            if n == 1:
                shared["floor_1024"] = median(floor_s)
            fsync_note = (f"the floor's {n} fsync{'s' if n > 1 else ''} took "
                          f"{median(fsync_s) * n * 1000:.1f} ms (median per fsync "
                          f"{median(fsync_s) * 1000:.1f} ms, both sides pay it)")
            rows.append(_row(f"2. generate n={n} 1024x1024 PNG, preview none (stdio)",
                             none_s, floor_s, 1.15, fsync_note))
            rows.append(_row(f"2. generate n={n} 1024x1024 PNG, thumbnail (stdio)",
                             thumb_s, thumb_floor_s, 1.15, "against the thumbnail floor",
                             "thumbnail floor"))
        # Figure 6 needs the whole call for a 1536x1024 image with its thumbnail.
        wide = gpt_body(1, "1536x1024")
        await client.call_tool("generate_image", {**wide, "preview": "thumbnail"})
        wide_s = [await timed(lambda: client.call_tool(
            "generate_image", {**wide, "preview": "thumbnail"})) for _ in range(plan.reps)]
        shared["call_1536_thumbnail"] = median(wide_s)
    return rows


async def preview_cost(emulator: EmulatorProcess, work: Path, plan: Plan,
                       shared: dict[str, float]) -> list[Row]:
    """The server's thumbnail of a 1536x1024 PNG against the thumbnail floor's, on the
    same bytes, interleaved (both in this process: CPU-bound, one thread each)."""
    from ttapi_mcp.previews import thumbnail_sync

    async with floor_client(emulator) as http:
        response = await http.post("/v1/images/generations", json=gpt_body(1, "1536x1024"))
        response.raise_for_status()
    data = base64.b64decode(response.json()["data"][0]["b64_json"])
    thumbnail_sync(data, THUMBNAIL_EDGE)
    floor_thumbnail(data)
    ours: list[float] = []
    floor: list[float] = []
    decode: list[float] = []
    for _ in range(max(5, plan.reps * 2)):
        ours.append(_seconds(lambda: thumbnail_sync(data, THUMBNAIL_EDGE)))
        floor.append(_seconds(lambda: floor_thumbnail(data)))
        decode.append(_decode_seconds(data))
    thumb = median(ours)
    whole = shared.get("call_1536_thumbnail")
    of_call = f"{thumb / whole:.0%} of the whole 1536x1024 call, " if whole else ""
    ratio = thumb / median(floor)
    return [Row("6. thumbnail of a 1536x1024 PNG vs the thumbnail floor's",
                f"{thumb * 1000:.1f} ms", f"{median(floor) * 1000:.1f} ms floor", ratio,
                "<= 1.15x", ratio <= 1.15,
                f"{of_call}{len(data) / 1e6:.1f} MB PNG, decoding it alone takes "
                f"{median(decode) * 1000:.1f} ms")]


def _seconds(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _decode_seconds(data: bytes) -> float:
    """The part of a thumbnail no resizing trick avoids: inflating the whole PNG."""
    from PIL import Image

    started = time.perf_counter()
    with Image.open(io.BytesIO(data)) as image:
        image.load()
    return time.perf_counter() - started
