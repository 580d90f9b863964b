"""Figure 3: 16 simultaneous generate_image calls over streamable HTTP, 1 s upstream latency.

If nothing in the server serialises them, all 16 wait on the emulator together and the
batch takes about as long as one call. With photo-sized images two cores cannot do
sixteen calls' decoding and thumbnails at once, so that figure is judged by CPU: the
CPU-seconds the server spends per call after the latency, against the CPU-seconds of
the thumbnail floor's same work (fig_calls) in the bench process; the wall time stays
as information.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
from fig_calls import floor_call, floor_client, gpt_body
from harness import (
    EmulatorProcess,
    Plan,
    Row,
    check_result,
    cpu_seconds,
    http_server,
    median,
    server_env,
    timed,
)

CALLS = 16
LATENCY = 1.0


def concurrency_env(emulator: EmulatorProcess, work: Path) -> tuple[dict[str, str], str]:
    """Server environment with the concurrency cap raised, when the setting exists."""
    from ttapi_mcp.config import Settings

    extra: dict[str, str] = {}
    note = ""
    if "max_concurrent_requests" in Settings.model_fields:
        extra["TTAPI_MAX_CONCURRENT_REQUESTS"] = str(CALLS)
    else:
        note = "no max_concurrent_requests setting yet (no cap to raise)"
    return server_env(emulator, work, **extra), note


async def _batch_with_cpu(
    together: Callable[[], Awaitable[None]], pids: tuple[int, ...]
) -> tuple[float, list[float]]:
    """Wall time of the batch, and the CPU-seconds each process used after the latency."""
    marks: list[float] = []

    async def mark_after_latency() -> None:
        await anyio.sleep(LATENCY)  # no answer can come earlier
        marks.extend(cpu_seconds(p) for p in pids)

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        group.start_soon(mark_after_latency)
        await together()
    wall = time.perf_counter() - started
    return wall, [cpu_seconds(p) - mark for p, mark in zip(pids, marks, strict=True)]


def _cpu_note(cpu: list[list[float]], single: float, note: str) -> str:
    """CPU work done after the upstream latency ended (median per process: server,
    emulator, client): on this machine's cores it needs at least total/cores seconds more,
    whatever the server does in parallel."""
    cores = os.cpu_count() or 1
    server, emulator, client = (median(list(each)) for each in zip(*cpu, strict=True))
    total = server + emulator + client
    bound = (LATENCY + total / cores) / single
    text = (f"after the {LATENCY:g} s latency the batch still used {total:.2f} CPU-s (medians "
            f"per process): server "
            f"{server:.2f}, emulator {emulator:.2f}, client {client:.2f}; on {cores} cores "
            f"that alone is {bound:.2f}x")
    return f"{note}; {text}" if note else text


async def concurrency(emulator: EmulatorProcess, work: Path, plan: Plan) -> list[Row]:
    """Photo-sized images (CPU-heavy: decode, hash, thumbnail x16 on this machine's cores)
    and small flat ones (pure waiting: shows whether anything in the server serialises)."""
    from mcp import Client

    floor_cpu = await _floor_cpu(emulator, work, plan)
    env, note = concurrency_env(emulator, work / "concurrency")
    args = {**gpt_body(1, "1024x1024"), "preview": "thumbnail"}
    rows: list[Row] = []
    with http_server(env) as (url, server_pid):
        async with Client(url, read_timeout_seconds=120) as client:
            check_result(await client.call_tool("generate_image", args))  # warm-up

            async def one(i: int = 0) -> None:
                # Distinct prompts: identical calls would attach to one running job.
                check_result(await client.call_tool(
                    "generate_image", {**args, "prompt": f"{args['prompt']} #{i}"}))

            async def together() -> None:
                async with anyio.create_task_group() as group:
                    for i in range(CALLS):
                        group.start_soon(one, i)

            for photo in (True, False):
                emulator.set_options(latency_seconds=0.0, photo_sized=photo)
                await together()  # the emulator renders (and caches) these images
                emulator.set_options(latency_seconds=LATENCY)
                try:
                    single: list[float] = []
                    batch: list[float] = []
                    after_latency: list[list[float]] = []
                    pids = (server_pid, emulator.proc.pid, os.getpid())
                    alone: list[float] = []
                    for _ in range(max(1, plan.reps // 3)):
                        before = cpu_seconds(server_pid)
                        single.append(await timed(one))
                        alone.append(cpu_seconds(server_pid) - before)
                        wall, cpu = await _batch_with_cpu(together, pids)
                        batch.append(wall)
                        after_latency.append(cpu)
                finally:
                    emulator.set_options(latency_seconds=0.0, photo_sized=True)
                    emulator.clear_log()
                ratio = median(batch) / median(single)
                kind = "photo-sized" if photo else "small flat"
                judged = not photo  # photo-sized: judged by CPU below, wall time shown
                rows.append(Row(f"3. {CALLS} concurrent calls, {kind} images, {LATENCY:g} s "
                                "latency (HTTP)", f"{median(batch):.2f} s",
                                f"{median(single):.2f} s one call", ratio,
                                "<= 1.25x" if judged else "- (see CPU row)",
                                ratio <= 1.25 if judged else None,
                                _cpu_note(after_latency, median(single), note)))
                if photo:
                    per_call = median([cpu[0] for cpu in after_latency]) / CALLS
                    cpu_ratio = per_call / floor_cpu
                    rows.append(Row(f"3. {CALLS} concurrent photo-sized calls: server CPU per "
                                    "call after the latency", f"{per_call * 1000:.1f} ms CPU",
                                    f"{floor_cpu * 1000:.1f} ms CPU thumbnail floor",
                                    cpu_ratio, "<= 1.3x", cpu_ratio <= 1.3,
                                    f"one call alone used {median(alone) * 1000:.0f} ms CPU "
                                    "in the server (1/100 s clock ticks)"))
    return rows


async def _floor_cpu(emulator: EmulatorProcess, work: Path, plan: Plan) -> float:
    """CPU-seconds of the thumbnail floor's call (receive, decode, durable write,
    thumbnail) in this process: the same work one of the server's calls does."""
    folder = work / "concurrency-floor"
    folder.mkdir(parents=True, exist_ok=True)
    emulator.set_options(latency_seconds=0.0, photo_sized=True)
    spent: list[float] = []
    async with floor_client(emulator) as http:
        await floor_call(http, folder, 1, "1024x1024", thumbnail=True)
        for _ in range(max(3, plan.reps)):
            started = time.process_time()
            await floor_call(http, folder, 1, "1024x1024", thumbnail=True)
            spent.append(time.process_time() - started)
    emulator.clear_log()
    return median(spent)
