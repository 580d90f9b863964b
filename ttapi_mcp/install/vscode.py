"""VS Code's mcp.json: JSON with comments and trailing commas, servers under "servers".

Each stdio server needs "type": "stdio". The file may also hold "inputs" (prompted
values); they are left as they are.
"""

from __future__ import annotations

from typing import Any

SERVERS_KEY = "servers"
COMMENTS = True


def entry(
    command: str, args: list[str], env: dict[str, str], typed: bool = True
) -> dict[str, Any]:
    return {"type": "stdio", "command": command, "args": args, "env": env}
