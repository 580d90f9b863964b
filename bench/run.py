"""Run the ttapi-mcp benchmarks and print each figure against its same-run baseline.

    python bench/run.py            # full: more repetitions (under 5 minutes)
    python bench/run.py --quick    # CI: fewer repetitions (under 1 minute)

Figures are medians over repeated runs, reported as ratios, because the absolute
numbers depend on the machine. A missed target is reported, not fatal (timing must not
make CI flaky); a benchmark that crashes exits 1.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

from fig_apps import gallery_page, result_size  # noqa: E402
from fig_calls import call_overhead, preview_cost  # noqa: E402
from fig_concurrency import concurrency  # noqa: E402
from fig_context import context_size  # noqa: E402
from fig_crossproc import crossproc  # noqa: E402
from fig_first import first_call  # noqa: E402
from fig_memory import memory  # noqa: E402
from fig_replicas import replicas  # noqa: E402
from fig_startup import cold_start  # noqa: E402
from fig_store import store_scale  # noqa: E402
from harness import BENCH_DIR, EmulatorProcess, Plan, Row, plan_for  # noqa: E402

Figure = Callable[[EmulatorProcess, Path, Plan, dict[str, float]], Awaitable[list[Row]]]


async def _startup(em: EmulatorProcess, work: Path, plan: Plan, _: dict[str, float]) -> list[Row]:
    return await anyio.to_thread.run_sync(cold_start, em, work, plan)


async def _calls(em: EmulatorProcess, work: Path, plan: Plan, s: dict[str, float]) -> list[Row]:
    return await call_overhead(em, work, plan, s)


async def _preview(em: EmulatorProcess, work: Path, plan: Plan, s: dict[str, float]) -> list[Row]:
    return await preview_cost(em, work, plan, s)


async def _conc(em: EmulatorProcess, work: Path, plan: Plan, _: dict[str, float]) -> list[Row]:
    return await concurrency(em, work, plan)


async def _memory(em: EmulatorProcess, work: Path, plan: Plan, _: dict[str, float]) -> list[Row]:
    return await memory(em, work, plan)


async def _store(em: EmulatorProcess, work: Path, plan: Plan, _: dict[str, float]) -> list[Row]:
    return await store_scale(em, work, plan)


async def _crossproc(em: EmulatorProcess, work: Path, plan: Plan,
                     _: dict[str, float]) -> list[Row]:
    return await crossproc(em, work, plan)


async def _sheet(em: EmulatorProcess, work: Path, plan: Plan, _: dict[str, float]) -> list[Row]:
    return await result_size(em, work, plan)


async def _gallery(em: EmulatorProcess, work: Path, plan: Plan, _: dict[str, float]) -> list[Row]:
    return await gallery_page(em, work, plan)


async def _context(em: EmulatorProcess, work: Path, plan: Plan, _: dict[str, float]) -> list[Row]:
    return await context_size(em, work, plan)


async def _first(em: EmulatorProcess, work: Path, plan: Plan, _: dict[str, float]) -> list[Row]:
    return await first_call(em, work, plan)


async def _replicas(em: EmulatorProcess, work: Path, plan: Plan,
                    _: dict[str, float]) -> list[Row]:
    return await replicas(em, work, plan)


FIGURES: list[tuple[str, Figure]] = [
    ("cold start", _startup), ("context size", _context), ("first call", _first),
    ("call overhead", _calls), ("concurrency", _conc),
    ("memory", _memory), ("store scale", _store), ("preview cost", _preview),
    ("crossproc collection", _crossproc),
    ("sheet size", _sheet), ("gallery page", _gallery), ("replicas", _replicas),
]


def table(rows: list[Row]) -> str:
    lines = ["| figure | measured | baseline (same run) | ratio | target | met |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
        met = "-" if r.met is None else ("yes" if r.met else "**no**")
        note = f" ({r.note})" if r.note else ""
        lines.append(f"| {r.figure}{note} | {r.value} | {r.baseline} | {ratio} | {r.target} "
                     f"| {met} |")
    return "\n".join(lines)


def machine() -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{now}; {os.cpu_count()} cores; Python {platform.python_version()} on "
            f"{platform.system()} {platform.machine()}; load average {load:.2f} at the end")


async def run(plan: Plan, only: set[str]) -> tuple[list[Row], list[str]]:
    rows: list[Row] = []
    failures: list[str] = []
    shared: dict[str, float] = {}
    emulator = EmulatorProcess()
    try:
        emulator.set_options(photo_sized=True)
        with tempfile.TemporaryDirectory(prefix="ttapi-bench-") as tmp:
            for name, figure in FIGURES:
                if only and name.split()[0] not in only:
                    continue
                started = time.monotonic()
                print(f"... {name}", file=sys.stderr, flush=True)
                try:
                    rows += await figure(emulator, Path(tmp), plan, shared)
                except Exception:
                    failures.append(name)
                    traceback.print_exc()
                print(f"    {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    finally:
        emulator.close()
    return rows, failures


def write_results(path: Path, head: str) -> None:
    """Replace the table at the top of the results file; keep the notes under it."""
    old = path.read_text() if path.exists() else ""
    at = old.find("\n## ")
    path.write_text(head + (old[at:] if at >= 0 else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (CI)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run one figure: context, first, cold, call, concurrency, memory, "
                        "store, preview, crossproc, sheet, gallery, replicas")
    parser.add_argument("--write", metavar="PATH", nargs="?", const=str(BENCH_DIR / "RESULTS.md"),
                        help="also write the table as Markdown (default bench/RESULTS.md); "
                        "the file's sections (from its first '## ' heading on) are kept")
    args = parser.parse_args()
    known = {name.split()[0] for name, _ in FIGURES}
    unknown = sorted(set(args.only) - known)
    if unknown:
        parser.error(f"no figure named {', '.join(unknown)}; "
                     f"choose from {', '.join(sorted(known))}")
    plan = plan_for(args.quick)
    started = time.monotonic()
    rows, failures = anyio.run(run, plan, set(args.only))
    text = table(rows)
    mode = "quick" if plan.quick else "full"
    print(f"\n{machine()}; {mode} run in {time.monotonic() - started:.0f} s\n\n{text}")
    if args.write:
        write_results(Path(args.write), f"Machine: {machine()}; {mode} run.\n\n{text}\n")
    if failures:
        print(f"\nbenchmarks that crashed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
