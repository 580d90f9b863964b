"""The "mcpServers" format: strict JSON (Claude Desktop, Claude Code, Cursor, Windsurf).

Each server is a member of the top-level "mcpServers" object: ``command``, ``args``,
``env``. Claude Desktop refuses a file with comments, so none are accepted here either.
"""

from __future__ import annotations

from typing import Any

SERVERS_KEY = "mcpServers"
COMMENTS = False


def entry(
    command: str, args: list[str], env: dict[str, str], typed: bool = False
) -> dict[str, Any]:
    """The server's entry; ``typed`` adds "type": "stdio" (Claude Code writes it so)."""
    body: dict[str, Any] = {"type": "stdio"} if typed else {}
    body.update({"command": command, "args": args, "env": env})
    return body
