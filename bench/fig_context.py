"""Context rows: the bytes of the tool listing a model reads at every session start.

What a model sees of a tool is its name, title, description and input schema; the
whole ``tools/list`` answer (output schemas, annotations, metadata too) is what the
client receives. Both are read from the raw JSON-RPC line a fresh stdio server sends,
for a client without the Apps extension (the four image tools).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fig_startup import _INIT, _answer, _send
from harness import ROOT, EmulatorProcess, Plan, Row, server_env, stop

SEEN = ("name", "title", "description", "inputSchema")
FOUR_MAX_KB = 9.0
WHOLE_MAX_KB = 16.0


def tools_list_line(env: dict[str, str]) -> bytes:
    """The raw tools/list answer of a fresh stdio server."""
    proc = subprocess.Popen([sys.executable, "-m", "ttapi_mcp", "serve"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                            cwd=str(ROOT))
    try:
        deadline = time.monotonic() + 60.0
        _send(proc, {"id": 1, "method": "initialize", "params": _INIT})
        _answer(proc, 1, deadline)
        _send(proc, {"method": "notifications/initialized"})
        _send(proc, {"id": 2, "method": "tools/list"})
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("the server closed stdout before listing its tools")
            if json.loads(line).get("id") == 2:
                return line.rstrip(b"\n")
        raise RuntimeError("no tools/list answer within the time limit")
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            stop(proc)


def seen_bytes(tool: dict[str, Any]) -> int:
    """A tool as a model reads it, compact JSON."""
    return len(json.dumps({k: tool[k] for k in SEEN if k in tool}, separators=(",", ":"),
                          ensure_ascii=False).encode())


async def context_size(emulator: EmulatorProcess, work: Path, plan: Plan) -> list[Row]:
    line = tools_list_line(server_env(emulator, work / "context"))
    tools = json.loads(line)["result"]["tools"]
    per_tool = {t["name"]: seen_bytes(t) for t in tools}
    four = sum(per_tool.values()) / 1000
    whole = len(line) / 1000
    detail = ", ".join(f"{name} {size / 1000:.1f}" for name, size in per_tool.items())
    return [
        Row(f"9. context: the {len(tools)} tools as a model sees them (name, title, "
            "description, input schema)", f"{four:.1f} KB", f"{whole:.1f} KB whole tools/list",
            None, f"<= {FOUR_MAX_KB:g} KB", four <= FOUR_MAX_KB, f"KB each: {detail}"),
        Row("9. context: the whole tools/list answer (stdio, JSON-RPC line)",
            f"{whole:.1f} KB", f"{four:.1f} KB seen by the model", None,
            f"<= {WHOLE_MAX_KB:g} KB", whole <= WHOLE_MAX_KB),
    ]
