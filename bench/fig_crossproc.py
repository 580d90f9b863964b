"""Figure 7: several servers on one store: collecting another server's job, and what
holding leases costs.

a) Server A runs a generate_image job; a fetch_job(wait=true) waits for it in A (the
   owner) and one in server B on the same store. For each, the delay from the owner
   recording the job's result (the row's finished_at, taken just before its commit) to
   the call returning; medians. Target: B within store_poll_seconds + 50 ms. Baseline:
   the owner's own waiter, same run.
b) A server holding 10 running jobs (the emulator answers long after the window): its
   CPU seconds over a window, per minute. Target: under 0.5 % of one core (0.3 CPU-s per
   minute). Baseline: the same server before the jobs, idle.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import anyio
from harness import (
    EmulatorProcess,
    Plan,
    Row,
    check_result,
    cpu_seconds,
    median,
    server_env,
    stdio_session,
)

POLL_SECONDS = 0.1
"""store_poll_seconds, the default."""
DALLE2 = {"model": "dall-e-2", "size": "256x256", "response_format": "b64_json"}
HELD_JOBS = 10


def _finished_at(database: Path, job_id: str) -> float:
    with sqlite3.connect(database, timeout=10) as conn:
        row = conn.execute("SELECT finished_at FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    if row is None or row[0] is None:
        raise RuntimeError(f"job {job_id} has no recorded end")
    return float(row[0])


async def _collection_delays(emulator: EmulatorProcess, work: Path,
                             plan: Plan) -> tuple[list[float], list[float]]:
    env = server_env(emulator, work, TTAPI_PREVIEW="none",
                     TTAPI_STORE_POLL_SECONDS=str(POLL_SECONDS))
    owner_delays, other_delays = [], []
    emulator.set_options(latency_seconds=0.5, photo_sized=False)
    async with stdio_session(env) as (a, _), stdio_session(env) as (b, _):
        for attempt in range(max(3, plan.reps)):
            started = check_result(await a.call_tool("generate_image", {
                "prompt": f"collected elsewhere {attempt}", **DALLE2, "wait": False}))
            job_id = started["job_id"]
            returned: dict[str, float] = {}

            async def wait_in(name: str, client: Any, job_id: str = job_id,
                              returned: dict[str, float] = returned) -> None:
                result = check_result(await client.call_tool(
                    "fetch_job", {"job_id": job_id, "wait": True}))
                returned[name] = time.time()
                if result["status"] != "completed":
                    raise RuntimeError(f"fetch_job answered {result['status']}")

            async with anyio.create_task_group() as tg:
                tg.start_soon(wait_in, "owner", a)
                tg.start_soon(wait_in, "other", b)
            ended = _finished_at(work / "store.sqlite3", job_id)
            owner_delays.append(returned["owner"] - ended)
            other_delays.append(returned["other"] - ended)
    return owner_delays, other_delays


async def _lease_cost(emulator: EmulatorProcess, work: Path, window: float) -> tuple[float,
                                                                                      float]:
    """CPU seconds per minute of one server: idle, then holding HELD_JOBS running jobs."""
    env = server_env(emulator, work, TTAPI_PREVIEW="none")
    emulator.set_options(latency_seconds=window + 60)
    async with stdio_session(env) as (client, pid):
        await client.read_resource("ttapi://jobs")  # the services (and the leases) run
        await anyio.sleep(1.0)
        before = cpu_seconds(pid)
        await anyio.sleep(window)
        idle = cpu_seconds(pid) - before
        for n in range(HELD_JOBS):
            check_result(await client.call_tool("generate_image", {
                "prompt": f"held job {n}", **DALLE2, "wait": False}))
        await anyio.sleep(1.0)
        before = cpu_seconds(pid)
        await anyio.sleep(window)
        held = cpu_seconds(pid) - before
    emulator.set_options(latency_seconds=0.0)
    return idle / window * 60, held / window * 60


async def crossproc(emulator: EmulatorProcess, work: Path, plan: Plan) -> list[Row]:
    try:
        owner, other = await _collection_delays(emulator, work / "crossproc", plan)
        window = 3.0 if plan.quick else 30.0
        idle, held = await _lease_cost(emulator, work / "leases", window)
    finally:
        emulator.set_options(latency_seconds=0.0, photo_sized=True)
    owner_ms, other_ms = median(owner) * 1000, median(other) * 1000
    target_ms = POLL_SECONDS * 1000 + 50
    budget = 0.005 * 60
    return [
        Row(f"7. result of another server's job reaches a waiter (stdio, poll "
            f"{POLL_SECONDS * 1000:.0f} ms, median of {len(other)})", f"{other_ms:.0f} ms",
            f"{owner_ms:.0f} ms in the owner", other_ms / owner_ms if owner_ms > 0 else None,
            f"<= {target_ms:.0f} ms", other_ms <= target_ms),
        Row(f"7. idle cost of leases, {HELD_JOBS} running jobs ({window:.0f} s window)",
            f"{held:.3f} CPU-s/min", f"{idle:.3f} CPU-s/min with none", None,
            f"< {budget:.1f} CPU-s/min (0.5 % of a core)", held < budget),
    ]
