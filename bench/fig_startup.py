"""Figure 1: cold start, spawn to tools/list answer, against a bare MCPServer.

Raw JSON-RPC over pipes (no SDK client) so the measurement holds only the server's
start: interpreter, imports, lifespan, handshake, one listing.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from pathlib import Path

from harness import BENCH_DIR, ROOT, EmulatorProcess, Plan, Row, median, server_env, stop

LIMIT = 1.10

_INIT = {"protocolVersion": "2025-11-25", "capabilities": {},
         "clientInfo": {"name": "bench", "version": "1"}}


def _send(proc: subprocess.Popen[bytes], message: dict[str, object]) -> None:
    assert proc.stdin is not None
    proc.stdin.write((json.dumps({"jsonrpc": "2.0", **message}) + "\n").encode())
    proc.stdin.flush()


def _answer(proc: subprocess.Popen[bytes], msg_id: int, deadline: float) -> dict[str, object]:
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if not ready:
            continue
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the server closed stdout during start-up")
        message = json.loads(line)
        if message.get("id") == msg_id:
            if "error" in message:
                raise RuntimeError(f"start-up request failed: {message['error']}")
            return dict(message["result"])
    raise RuntimeError("no answer from the server within the time limit")


def spawn_to_tools_list(command: list[str], env: dict[str, str],
                        root: Path = ROOT) -> tuple[float, int]:
    """Seconds from spawn to the tools/list answer, and the number of tools listed."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env, cwd=str(root))
    try:
        deadline = time.monotonic() + 60.0
        _send(proc, {"id": 1, "method": "initialize", "params": _INIT})
        _answer(proc, 1, deadline)
        _send(proc, {"method": "notifications/initialized"})
        _send(proc, {"id": 2, "method": "tools/list"})
        tools = _answer(proc, 2, deadline)["tools"]
        elapsed = time.perf_counter() - started
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            stop(proc)
    assert isinstance(tools, list)
    return elapsed, len(tools)


def cold_start(emulator: EmulatorProcess, work: Path, plan: Plan) -> list[Row]:
    env = server_env(emulator, work / "startup")
    ours = [sys.executable, "-m", "ttapi_mcp", "serve"]
    bare = [sys.executable, str(BENCH_DIR / "minimal_server.py")]
    spawn_to_tools_list(ours, env)  # first start creates the store; warms the file cache
    spawn_to_tools_list(bare, env)
    ours_s: list[float] = []
    bare_s: list[float] = []
    for _ in range(plan.startup_reps):
        elapsed, count = spawn_to_tools_list(ours, env)
        if count != 4:
            raise RuntimeError(f"ttapi-mcp listed {count} tools, expected 4")
        ours_s.append(elapsed)
        bare_s.append(spawn_to_tools_list(bare, env)[0])
    ratio = median(ours_s) / median(bare_s)
    return [Row("1. cold start: spawn -> tools/list (stdio)", f"{median(ours_s) * 1000:.0f} ms",
                f"{median(bare_s) * 1000:.0f} ms bare MCPServer", ratio, f"<= {LIMIT}x",
                ratio <= LIMIT)]
