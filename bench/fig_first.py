"""The first call of a process, made as a client really makes it: two seconds after
``tools/list`` (the time a model takes to answer), against a warm call of the same
server. Each repetition is a fresh server process; the call has the default preview.
"""

from __future__ import annotations

from pathlib import Path

import anyio
from fig_calls import gpt_body
from harness import (
    EmulatorProcess,
    Plan,
    Row,
    check_result,
    median,
    server_env,
    stdio_session,
    timed,
)

THINK_SECONDS = 2.0
LIMIT = 1.5


async def first_call(emulator: EmulatorProcess, work: Path, plan: Plan) -> list[Row]:
    env = server_env(emulator, work / "first")
    args = gpt_body(1, "1024x1024")
    first_s: list[float] = []
    warm_s: list[float] = []

    async def call(client: object) -> None:
        check_result(await client.call_tool("generate_image", args))  # type: ignore[attr-defined]

    async with stdio_session(env) as (client, _pid):  # the emulator renders and caches
        await call(client)
    for _ in range(max(2, plan.reps // 3)):
        async with stdio_session(env) as (client, _pid):
            await client.list_tools()
            await anyio.sleep(THINK_SECONDS)
            first_s.append(await timed(lambda client=client: call(client)))
            for _ in range(3):
                warm_s.append(await timed(lambda client=client: call(client)))
    emulator.clear_log()
    ratio = median(first_s) / median(warm_s)
    return [Row(f"10. first call, {THINK_SECONDS:g} s after tools/list (stdio, n=1 1024x1024, "
                "default preview)", f"{median(first_s) * 1000:.0f} ms",
                f"{median(warm_s) * 1000:.0f} ms warm call", ratio, f"<= {LIMIT}x",
                ratio <= LIMIT, f"first calls {', '.join(f'{s * 1000:.0f}' for s in first_s)} ms")]
