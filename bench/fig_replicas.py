"""Figure 9: replicas on one PostgreSQL and one S3 bucket (moto's server) behind haproxy.

a) Calls per second through the balancer with 1 and with 3 replicas (same run, same
   PostgreSQL, same emulator): dall-e-2 calls at a fixed concurrency, 2026-07-28 clients
   (round robin per request). On a 2-core machine the ratio is bounded by the cores, so
   the CPU seconds of each part (replicas, PostgreSQL, S3, haproxy, emulator, the
   clients) are reported with it. Each replica has its own output folder.
b) The latency of one call through the balancer to a replica on PostgreSQL and S3,
   against one SQLite server process called directly; medians of sequential calls.
   Target <= 1.2x.

Skipped (no rows) when PostgreSQL's binaries or haproxy are missing.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import AsyncExitStack, ExitStack, suppress
from pathlib import Path
from typing import Any

import anyio
from harness import (
    KEY,
    ROOT,
    EmulatorProcess,
    Plan,
    Row,
    check_result,
    children_of,
    cpu_seconds,
    free_port,
    http_server,
    median,
    server_env,
)

sys.path.insert(0, str(ROOT / "tests"))
from pgcluster import Cluster, find_bin_dir  # noqa: E402
from replicas import Balancer, Replica, haproxy_binary, replica_env  # noqa: E402
from s3server import S3Server  # noqa: E402

CONCURRENCY = 12
DALLE2 = {"model": "dall-e-2", "size": "256x256", "response_format": "b64_json",
          "preview": "none"}


def _postgres_pids(cluster: Cluster) -> list[int]:
    master = int((cluster.data / "postmaster.pid").read_text().split()[0])
    return [master, *children_of(master)]


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with suppress(OSError):
            total += cpu_seconds(pid)
    return total


async def _throughput(url: str, calls: int, tag: str) -> float:
    """Calls per second: ``calls`` generate_image calls, CONCURRENCY at a time."""
    from mcp import Client

    numbers = iter(range(calls))
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(Client(url)) for _ in range(CONCURRENCY)]

        async def worker(client: Any) -> None:
            for n in numbers:
                check_result(await client.call_tool(
                    "generate_image", {**DALLE2, "prompt": f"{tag} {n}"}))

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for client in clients:
                tg.start_soon(worker, client)
        return calls / (time.perf_counter() - started)


async def _latency(url: str, reps: int, tag: str) -> float:
    from mcp import Client

    times = []
    async with Client(url) as client:
        check_result(await client.call_tool("generate_image", {**DALLE2, "prompt": tag}))
        for n in range(reps):
            started = time.perf_counter()
            check_result(await client.call_tool(
                "generate_image", {**DALLE2, "prompt": f"{tag} {n}"}))
            times.append(time.perf_counter() - started)
    return median(times)


async def replicas(emulator: EmulatorProcess, work: Path, plan: Plan) -> list[Row]:
    bin_dir, binary = find_bin_dir(), haproxy_binary()
    if bin_dir is None or binary is None:
        print("    skipped: no PostgreSQL binaries or no haproxy", file=sys.stderr)
        return []
    calls = 40 if plan.quick else 200
    reps = plan.reps * 3
    folder = work / "replicas"
    folder.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(bin_dir).start()
    rows: list[Row] = []
    replica_latency = 0.0
    try:
        url = cluster.new_schema_url()
        with ExitStack() as stack:
            s3 = S3Server(folder).start()
            stack.callback(s3.stop)
            env = {**replica_env(emulator.base_url, KEY, folder, url, ""),  # no hooks
                   **s3.env(s3.bucket())}
            fleet = [Replica(f"bench-r{i}", {**env, "TTAPI_OUTPUT_DIR": str(folder / f"out{i}")},
                             folder) for i in range(3)]
            for replica in fleet:
                replica.start()
                stack.callback(replica.stop)
            per_count: dict[int, tuple[float, dict[str, float]]] = {}
            for count in (1, 3):
                (folder / f"lb{count}").mkdir(exist_ok=True)
                balancer = Balancer(binary, [r.port for r in fleet[:count]],
                                    folder / f"lb{count}", free_port()).start()
                try:
                    parts = {
                        "replicas": lambda: _cpu([r.proc.pid for r in fleet if r.proc]),
                        "postgres": lambda: _cpu(_postgres_pids(cluster)),
                        "s3": lambda: _cpu([s3.proc.pid] if s3.proc else []),
                        "haproxy": lambda b=balancer: _cpu([b.proc.pid] if b.proc else []),
                        "emulator": lambda: _cpu([emulator.proc.pid]),
                        "clients": lambda: _cpu([os.getpid()]),
                    }
                    before = {k: f() for k, f in parts.items()}
                    rate = await _throughput(f"{balancer.origin}/mcp", calls, f"lb{count}")
                    used = {k: f() - before[k] for k, f in parts.items()}
                    per_count[count] = (rate, used)
                    if count == 3:
                        replica_latency = await _latency(f"{balancer.origin}/mcp", reps, "lat")
                finally:
                    balancer.stop()
                emulator.clear_log()
            # What each part adds, called directly (the fleet idles meanwhile): the SQLite
            # process, then PostgreSQL alone, then PostgreSQL and the bucket.
            with http_server(server_env(emulator, work / "single")) as (single_url, _pid):
                single_latency = await _latency(single_url, reps, "single")
            pg_only = server_env(emulator, work / "pg-only", TTAPI_DATABASE_URL=url)
            with http_server(pg_only) as (pg_url, _pid):
                pg_latency = await _latency(pg_url, reps, "pg")
            with http_server({**pg_only, **s3.env(s3.bucket()),
                              "TTAPI_OUTPUT_DIR": str(work / "pg-s3")}) as (pg_s3_url, _pid):
                pg_s3_latency = await _latency(pg_s3_url, reps, "pgs3")
    finally:
        cluster.stop()
    (one, used1), (three, used3) = per_count[1], per_count[3]

    def cpu_note(used: dict[str, float]) -> str:
        return "CPU s " + ", ".join(f"{k} {v:.1f}" for k, v in used.items())

    rows.append(Row(
        "replicas: calls/s, 3 vs 1 on one PostgreSQL", f"{three:.1f} calls/s (3 replicas)",
        f"{one:.1f} calls/s (1 replica)", three / one, f"> 1x, bounded by {os.cpu_count()} cores",
        three > one, note=f"{calls} calls at {CONCURRENCY}; 3: {cpu_note(used3)}; "
        f"1: {cpu_note(used1)}"))
    ratio = replica_latency / single_latency
    rows.append(Row(
        "replicas: one call through haproxy on PostgreSQL and S3",
        f"{replica_latency * 1000:.1f} ms",
        f"{single_latency * 1000:.1f} ms (one SQLite process, direct)", ratio, "<= 1.2x",
        ratio <= 1.2, note=f"median of {reps}; direct, without the balancer: on PostgreSQL "
        f"{pg_latency * 1000:.1f} ms, on PostgreSQL and S3 {pg_s3_latency * 1000:.1f} ms"))
    return rows
