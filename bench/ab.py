"""Compare this checkout's server with another checkout's, measurement by measurement.

    python bench/ab.py ../other-checkout                 # every case below
    python bench/ab.py ../other-checkout --only cold --reps 20

For a before/after figure of one change: a ratio from run.py moves by several per cent
between runs on a shared machine, often more than the change. Here the two servers are
measured alternately in one run against one emulator, and the answer is this/other.
Each server runs from its own checkout (working directory and PYTHONPATH), since
``python -m`` imports the package of its working directory before any other.

Cases: ``cold`` (spawn to tools/list), ``none`` and ``thumbnail`` (generate_image, n=1,
1024x1024 photo-sized PNG, over stdio), ``first`` (the first such call of a fresh
server, two seconds after tools/list, as figure 10 makes it), ``list`` (first page of
resources/list on a store of 10,000 images). The emulator is this checkout's. The
``list`` store is filled with this checkout's database schema, so the other checkout
must be able to read it.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

from fig_calls import gpt_body  # noqa: E402
from fig_startup import spawn_to_tools_list  # noqa: E402
from fig_store import populate  # noqa: E402
from harness import (  # noqa: E402
    ROOT,
    EmulatorProcess,
    check_result,
    server_env,
    stdio_session,
    timed,
)

CASES = ("cold", "none", "thumbnail", "first", "list")


def env_in(root: Path, emulator: EmulatorProcess, work: Path) -> dict[str, str]:
    env = server_env(emulator, work)
    env["PYTHONPATH"] = str(root)
    return env


async def alternate(
    first: Callable[[], Awaitable[float]], second: Callable[[], Awaitable[float]], reps: int
) -> tuple[float, float]:
    """Medians of ``reps`` measurements of each (rounded up to even, so each side goes
    first equally often), in alternating order, after one warm-up."""
    await first()
    await second()
    times: tuple[list[float], list[float]] = ([], [])
    for rep in range(reps + reps % 2):
        order = ((0, first), (1, second)) if rep % 2 == 0 else ((1, second), (0, first))
        for index, measure in order:
            times[index].append(await measure())
    return statistics.median(times[0]), statistics.median(times[1])


@contextlib.asynccontextmanager
async def two_sessions(other: Path, emulator: EmulatorProcess,
                       works: tuple[Path, Path]) -> AsyncIterator[tuple[Any, Any]]:
    async with stdio_session(env_in(other, emulator, works[0]), root=other) as (a, _), \
            stdio_session(env_in(ROOT, emulator, works[1]), root=ROOT) as (b, _):
        yield a, b


async def measure(case: str, other: Path, emulator: EmulatorProcess, work: Path,
                  reps: int) -> tuple[float, float]:
    if case == "cold":
        command = [sys.executable, "-m", "ttapi_mcp", "serve"]

        def start(root: Path, side: str) -> Callable[[], Awaitable[float]]:
            env = env_in(root, emulator, work / f"cold-{side}")
            return lambda: anyio.to_thread.run_sync(
                lambda: spawn_to_tools_list(command, env, root)[0])

        return await alternate(start(other, "other"), start(ROOT, "this"), reps)
    if case == "list":
        store = work / "store-10k"
        if not (store / "store.sqlite3").exists():
            await populate(store, 10_000)
        async with two_sessions(other, emulator, (store, store)) as (a, b):
            return await alternate(lambda: listing(a), lambda: listing(b), reps)
    if case == "first":
        def first(root: Path, side: str) -> Callable[[], Awaitable[float]]:
            return lambda: first_call(env_in(root, emulator, work / f"first-{side}"), root)

        return await alternate(first(other, "other"), first(ROOT, "this"), reps)
    body = {**gpt_body(1, "1024x1024"), "preview": case}
    async with two_sessions(other, emulator, (work / "a", work / "b")) as (a, b):
        return await alternate(lambda: generating(a, body), lambda: generating(b, body), reps)


async def first_call(env: dict[str, str], root: Path) -> float:
    """A fresh server's first call (default preview), two seconds after tools/list."""
    async with stdio_session(env, root=root) as (client, _pid):
        await client.list_tools()
        await anyio.sleep(2.0)
        return await generating(client, gpt_body(1, "1024x1024"))


async def listing(client: Any) -> float:
    return await timed(lambda: client.list_resources(cache_mode="bypass"))


async def generating(client: Any, body: dict[str, Any]) -> float:
    async def call() -> None:
        check_result(await client.call_tool("generate_image", body))

    return await timed(call)


async def main(other: Path, cases: list[str], reps: int) -> None:
    emulator = EmulatorProcess()
    try:
        emulator.set_options(photo_sized=True)
        with tempfile.TemporaryDirectory(prefix="ttapi-ab-") as tmp:
            print(f"other: {other}\nthis:  {ROOT}\n")
            print("| case | other | this | this/other |\n|---|---|---|---|")
            for case in cases:
                a, b = await measure(case, other, emulator, Path(tmp), reps)
                print(f"| {case} | {a * 1000:.2f} ms | {b * 1000:.2f} ms | {b / a:.3f} |",
                      flush=True)
    finally:
        emulator.close()


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("other", type=Path, help="another checkout of ttapi-mcp")
    parser.add_argument("--only", action="append", choices=CASES, metavar="CASE",
                        help=f"one of {', '.join(CASES)} (repeatable; default: all)")
    parser.add_argument("--reps", type=int, default=30, help="measurements of each (30)")
    args = parser.parse_args()
    other = args.other.resolve()
    if not (other / "ttapi_mcp" / "__init__.py").is_file():
        parser.error(f"{other} is not a checkout of ttapi-mcp (no ttapi_mcp/__init__.py)")
    if other == ROOT:
        parser.error("compare with another checkout, not this one")
    anyio.run(main, other, list(dict.fromkeys(args.only or CASES)), max(1, args.reps))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
