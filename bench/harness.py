"""Shared machinery of the benchmarks: processes, sessions, timing, memory readings.

Every figure compares the product with a baseline measured in the same run, so the
machine's speed (shared, noisy) cancels out of the ratio. The emulator runs as its own
process so its CPU cost never lands in the server's measurements.
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key"
BENCH_DIR = Path(__file__).resolve().parent


@dataclass
class Row:
    """One line of the results table."""

    figure: str
    value: str
    baseline: str
    ratio: float | None
    target: str
    met: bool | None
    note: str = ""


@dataclass(frozen=True)
class Plan:
    """How hard to try: the quick plan keeps the whole suite under a minute."""

    quick: bool
    reps: int
    startup_reps: int
    store_images: int
    edit_images: int
    edit_image_mb: int


def plan_for(quick: bool) -> Plan:
    if quick:
        return Plan(quick=True, reps=3, startup_reps=2, store_images=10_000, edit_images=16,
                    edit_image_mb=20)
    return Plan(quick=False, reps=15, startup_reps=15, store_images=10_000, edit_images=16,
                edit_image_mb=20)


def median(values: list[float]) -> float:
    return statistics.median(values)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(**extra: str) -> dict[str, str]:
    """The bench's environment without TTAPI settings, with the project importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTAPI_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise RuntimeError(f"timed out waiting for {what}")


def stop(proc: subprocess.Popen[Any]) -> None:
    """Terminate a child we started; kill it if it does not exit within a few seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class EmulatorProcess:
    """`python -m ttapi_mcp emulator` in its own process, driven through its admin routes."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ttapi_mcp", "emulator", "--port", str(self.port)],
            env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            cwd=str(ROOT),  # this checkout's emulator, wherever the bench is started from
        )
        self.http = httpx2.Client(base_url=self.base_url, timeout=120.0)
        wait_until(self._up, 30.0, "the emulator to start")

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError("the emulator process exited")
        try:
            return self.http.get("/_emulator/options").status_code == 200
        except httpx2.HTTPError:
            return False

    def set_options(self, **options: Any) -> None:
        self.http.post("/_emulator/options", json=options).raise_for_status()

    def clear_log(self) -> None:
        """The emulator logs every request; keep it small over long runs."""
        self.http.delete("/_emulator/log").raise_for_status()

    def close(self) -> None:
        self.http.close()
        stop(self.proc)


def server_env(emulator: EmulatorProcess, work: Path, **extra: str) -> dict[str, str]:
    """Environment of a ttapi-mcp server pointing at the emulator, files under `work`."""
    return child_env(
        TTAPI_API_KEY=KEY, TTAPI_BASE_URL=emulator.base_url,
        TTAPI_OUTPUT_DIR=str(work / "out"), TTAPI_DATABASE_PATH=str(work / "store.sqlite3"),
        TTAPI_LOG_LEVEL="WARNING", **extra,
    )


def children_of(pid: int) -> list[int]:
    """Direct children of `pid` (Linux /proc), to find the server a stdio client spawned."""
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def status_kb(pid: int, field: str) -> int:
    """VmRSS or VmHWM of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not found for pid {pid}")


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False when not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@contextlib.asynccontextmanager
async def stdio_session(env: dict[str, str], args: list[str] | None = None,
                        errlog: Path | None = None,
                        root: Path = ROOT, **client_options: Any
                        ) -> AsyncIterator[tuple[Any, int]]:
    """An mcp.Client over stdio to a fresh server process; yields (client, server pid).

    The server runs in ``root``, whose ``ttapi_mcp`` it imports first (see ab.py);
    ``client_options`` go to ``mcp.Client`` (e.g. ``extensions``)."""
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command=sys.executable, args=args or ["-m", "ttapi_mcp", "serve"], env=env,
        cwd=str(root))
    before = set(children_of(os.getpid()))
    log_path = errlog or Path(os.devnull)
    with open(log_path, "w") as log:
        async with Client(stdio_client(params, errlog=log), read_timeout_seconds=300,
                          **client_options) as client:
            spawned = [p for p in children_of(os.getpid()) if p not in before]
            if len(spawned) != 1:
                raise RuntimeError(f"cannot tell the server process apart: {spawned}")
            yield client, spawned[0]


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await fn()
    return time.perf_counter() - started


@contextlib.contextmanager
def http_server(env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """`ttapi-mcp serve --transport http` in its own process; yields (/mcp URL, pid)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ttapi_mcp", "serve", "--transport", "http", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(ROOT))

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError("the HTTP server process exited")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_until(up, 30.0, "the HTTP server to start")
        yield f"http://127.0.0.1:{port}/mcp", proc.pid
    finally:
        stop(proc)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def check_result(result: Any) -> dict[str, Any]:
    """The structured content of a successful tool call; a failed call stops the bench."""
    if result.is_error:
        raise RuntimeError(f"tool call failed: {result.content}")
    content: dict[str, Any] = result.structured_content
    return content
