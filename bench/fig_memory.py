"""Figure 4: resident memory of the stdio server process, read from /proc/<pid>/status.

Peaks come from VmHWM; before each later phase the peak is reset (clear_refs 5) so each
phase's growth is its own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fig_calls import floor_client, gpt_body
from harness import (
    BENCH_DIR,
    EmulatorProcess,
    Plan,
    Row,
    check_result,
    reset_peak,
    server_env,
    status_kb,
    stdio_session,
)

MB = 1024 * 1024
PEAK_MAX_MB = 85


def big_input(path: Path, megabytes: int) -> None:
    """An incompressible PNG of about `megabytes` MB (stored, not deflated)."""
    import random

    from PIL import Image

    side = int((megabytes * 1_000_000 / 3) ** 0.5)
    noise = random.Random(7).randbytes(side * side * 3)
    Image.frombytes("RGB", (side, side), noise).save(path, "PNG", compress_level=0)


def _mb(kb: int) -> str:
    return f"{kb / 1024:.0f} MB"


async def _growth(pid: int, call: Any) -> int:
    """Peak RSS growth in KiB while `call` runs."""
    if not reset_peak(pid):
        raise RuntimeError("cannot reset the peak RSS of the server (clear_refs refused)")
    before = status_kb(pid, "VmRSS")
    await call()
    return status_kb(pid, "VmHWM") - before


async def memory(emulator: EmulatorProcess, work: Path, plan: Plan) -> list[Row]:
    rows: list[Row] = []
    work = work / "memory"
    env = server_env(emulator, work)
    async with floor_client(emulator) as http:
        body = await http.post("/v1/images/generations", json=gpt_body(10, "1536x1024"))
        body.raise_for_status()
    body_kb = len(body.content) // 1024
    del body

    async with stdio_session(env, args=[str(BENCH_DIR / "minimal_server.py")]) as (bare,
                                                                                  bare_pid):
        await bare.list_tools()
        bare_kb = status_kb(bare_pid, "VmHWM")

    async with stdio_session(env) as (client, pid):
        await client.list_tools()
        check_result(await client.call_tool("generate_image", gpt_body(1, "1024x1024")))
        peak_kb = status_kb(pid, "VmHWM")
        rows.append(Row("4. peak RSS, one 1024x1024 call with the default preview",
                        _mb(peak_kb), f"{_mb(bare_kb)} bare MCPServer", peak_kb / bare_kb,
                        f"<= {PEAK_MAX_MB} MB", peak_kb <= PEAK_MAX_MB * 1024))

        async def n10() -> None:
            check_result(await client.call_tool("generate_image", gpt_body(10, "1536x1024")))

        grown = await _growth(pid, n10)
        ratio = grown / body_kb
        rows.append(Row("4. RSS growth, n=10 1536x1024 PNG", _mb(grown),
                        f"{_mb(body_kb)} response body", ratio, "<= 2.5x", ratio <= 2.5))

        folder = work / "out"
        first = folder / "bench-input-0.png"
        big_input(first, plan.edit_image_mb)
        inputs = [first]
        for i in range(1, plan.edit_images):
            inputs.append(folder / f"bench-input-{i}.png")
            os.link(first, inputs[-1])  # same bytes, read through its own path
        upload_mb = sum(p.stat().st_size for p in inputs) / MB

        async def edit() -> None:
            check_result(await client.call_tool("edit_image", {
                "prompt": "combine them", "images": [str(p) for p in inputs],
                "model": "gpt-image-1", "size": "1024x1024"}))

        grown = await _growth(pid, edit)
        for path in inputs:
            path.unlink()
    emulator.clear_log()
    rows.append(Row(f"4. RSS growth, edit with {len(inputs)} x {plan.edit_image_mb} MB inputs",
                    _mb(grown), f"{upload_mb:.0f} MB uploaded", None,
                    "<= 64 MB", grown <= 64 * 1024))
    return rows
