"""Figures 2 and 6: the cost of a generate_image call over stdio, and of its thumbnail.

The floor is what any correct client must do: POST to the emulator, decode the base64
(with the fastest strict decoder in the standard library), write the file durably
(write, fsync, rename, as the store does). Floor and server calls
alternate, so a busy moment on the machine hits both alike.
"""

from __future__ import annotations

import base64
import binascii
import os
import time
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


async def floor_call(http: httpx2.AsyncClient, folder: Path, n: int, size: str) -> int:
    """POST, decode, write each image durably; returns the response body size."""
    response = await http.post("/v1/images/generations", json=gpt_body(n, size))
    response.raise_for_status()
    for i, item in enumerate(response.json()["data"]):
        data = binascii.a2b_base64(item["b64_json"], strict_mode=True)
        tmp, final = folder / f".floor-{i}.tmp", folder / f"floor-{i}.png"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    return len(response.content)


def floor_client(emulator: EmulatorProcess) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(base_url=emulator.base_url, headers={"TT-API-KEY": KEY},
                              timeout=120.0)


def _row(label: str, ours: list[float], floor: list[float], limit: float) -> Row:
    ratio = median(ours) / median(floor)
    return Row(label, f"{median(ours) * 1000:.0f} ms", f"{median(floor) * 1000:.0f} ms floor",
               ratio, f"<= {limit}x", ratio <= limit)


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
            await floor_call(http, folder, n, size)
            floor_s: list[float] = []
            none_s: list[float] = []
            thumb_s: list[float] = []
            reps = plan.reps if n == 1 else max(1, plan.reps // 2)
            for _ in range(reps):
                floor_s.append(await timed(lambda n=n, size=size: floor_call(
                    http, folder, n, size)))
                none_s.append(await timed(lambda: ours("none")))
                thumb_s.append(await timed(lambda: ours("thumbnail")))
            emulator.clear_log()
            if n == 1:
                shared["floor_1024"] = median(floor_s)
            rows.append(_row(f"2. generate n={n} 1024x1024 PNG, preview none (stdio)",
                             none_s, floor_s, 1.15))
            rows.append(_row(f"2. generate n={n} 1024x1024 PNG, thumbnail (stdio)",
                             thumb_s, floor_s, 1.3))
        # Figure 6 needs the whole call for a 1536x1024 image with its thumbnail.
        wide = gpt_body(1, "1536x1024")
        await client.call_tool("generate_image", {**wide, "preview": "thumbnail"})
        wide_s = [await timed(lambda: client.call_tool(
            "generate_image", {**wide, "preview": "thumbnail"})) for _ in range(plan.reps)]
        shared["call_1536_thumbnail"] = median(wide_s)
    return rows


async def preview_cost(emulator: EmulatorProcess, work: Path, plan: Plan,
                       shared: dict[str, float]) -> list[Row]:
    from ttapi_mcp.previews import thumbnail_sync

    async with floor_client(emulator) as http:
        response = await http.post("/v1/images/generations", json=gpt_body(1, "1536x1024"))
        response.raise_for_status()
        if "floor_1024" not in shared:  # run on its own (--only preview)
            folder = work / "floor"
            folder.mkdir(parents=True, exist_ok=True)
            await floor_call(http, folder, 1, "1024x1024")
            shared["floor_1024"] = median([await timed(lambda: floor_call(
                http, folder, 1, "1024x1024")) for _ in range(plan.reps)])
    data = base64.b64decode(response.json()["data"][0]["b64_json"])
    thumbnail_sync(data, 512)
    times: list[float] = []
    for _ in range(max(5, plan.reps)):
        started = time.perf_counter()
        thumbnail_sync(data, 512)
        times.append(time.perf_counter() - started)
    thumb = median(times)
    decode = median([_decode_seconds(data) for _ in range(max(5, plan.reps))])
    floor = shared["floor_1024"]
    share = thumb / floor
    whole = shared.get("call_1536_thumbnail")
    of_call = f"{thumb / whole:.0%} of the whole 1536x1024 call, " if whole else ""
    return [Row("6. thumbnail of a 1536x1024 PNG vs floor of 2", f"{thumb * 1000:.1f} ms",
                f"{floor * 1000:.0f} ms floor", share, "< 0.10x", share < 0.10,
                f"{of_call}{len(data) / 1e6:.1f} MB PNG, decoding it alone takes "
                f"{decode * 1000:.1f} ms")]


def _decode_seconds(data: bytes) -> float:
    """The part of a thumbnail no resizing trick avoids: inflating the whole PNG."""
    import io

    from PIL import Image

    started = time.perf_counter()
    with Image.open(io.BytesIO(data)) as image:
        image.load()
    return time.perf_counter() - started
