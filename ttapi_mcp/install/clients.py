"""The MCP clients `ttapi-mcp install` knows: where each keeps its configuration, in which shape.

Paths are the ones each client documents, per platform. They are computed from a home
folder, a platform name and an environment passed in (not read from the process), so
tests can lay out every platform under a temporary folder.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Literal

Platform = Literal["darwin", "win32", "linux"]
Shape = Literal["mcpServers", "vscode"]
"""``mcpServers``: strict JSON, entries under "mcpServers" (Claude, Cursor, Windsurf).
``vscode``: JSON with comments, entries under "servers" with "type": "stdio"."""


@dataclass(frozen=True)
class Client:
    name: str
    title: str
    shape: Shape
    restart: str
    """What the user does after the file changed, in the client's words."""
    info_names: tuple[str, ...]
    """Substrings of the name a client reports in MCP's clientInfo, lower case."""


CLIENTS: dict[str, Client] = {
    client.name: client for client in (
        Client("claude-code", "Claude Code", "mcpServers",
               "start a new Claude Code session (or run /mcp)", ("claude-code",)),
        Client("claude-desktop", "Claude Desktop", "mcpServers",
               "quit Claude Desktop completely and open it again", ("claude",)),
        Client("cursor", "Cursor", "mcpServers",
               "reload Cursor (Settings → MCP shows the server)", ("cursor",)),
        Client("vscode", "VS Code", "vscode",
               "run 'MCP: List Servers' in VS Code and start the server",
               ("visual studio code", "vscode", "vs code")),
        Client("windsurf", "Windsurf", "mcpServers",
               "press Refresh in Windsurf's MCP panel", ("windsurf",)),
    )
}
# Order matters when matching clientInfo: "cursor-vscode" is Cursor, "claude-code" is not
# Claude Desktop.
MATCH_ORDER = ("claude-code", "cursor", "windsurf", "vscode", "claude-desktop")


def current_platform() -> Platform:
    if sys.platform == "darwin":
        return "darwin"
    return "win32" if sys.platform.startswith("win") else "linux"


def _appdata(home: PurePath, env: Mapping[str, str]) -> PurePath:
    return PurePath(env["APPDATA"]) if env.get("APPDATA") else home / "AppData" / "Roaming"


def _xdg_config(home: PurePath, env: Mapping[str, str]) -> PurePath:
    return PurePath(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else home / ".config"


def config_path(client: str, platform: Platform | None = None, home: PurePath | None = None,
                env: Mapping[str, str] | None = None) -> Path:
    """The user-level configuration file of ``client`` on ``platform``."""
    platform = platform or current_platform()
    home = home if home is not None else Path.home()
    env = os.environ if env is None else env
    if client == "claude-code":  # user scope: the top-level "mcpServers" of ~/.claude.json
        path = home / ".claude.json"
    elif client == "cursor":
        path = home / ".cursor" / "mcp.json"
    elif client == "windsurf":
        path = home / ".codeium" / "windsurf" / "mcp_config.json"
    elif client == "claude-desktop":
        name = "claude_desktop_config.json"
        if platform == "darwin":
            path = home / "Library" / "Application Support" / "Claude" / name
        elif platform == "win32":
            path = _appdata(home, env) / "Claude" / name
        else:  # no official Linux build; community builds use the XDG folder
            path = _xdg_config(home, env) / "Claude" / name
    elif client == "vscode":
        if platform == "darwin":
            path = home / "Library" / "Application Support" / "Code" / "User" / "mcp.json"
        elif platform == "win32":
            path = _appdata(home, env) / "Code" / "User" / "mcp.json"
        else:
            path = _xdg_config(home, env) / "Code" / "User" / "mcp.json"
    else:
        known = ", ".join(sorted(CLIENTS))
        raise ValueError(f"unknown client {client!r}; known clients: {known}")
    return Path(path)


def client_from_info(name: str | None) -> Client | None:
    """The client behind an MCP clientInfo name ("claude-ai", "cursor-vscode", ...)."""
    if not name:
        return None
    lowered = name.lower()
    for key in MATCH_ORDER:
        if any(part in lowered for part in CLIENTS[key].info_names):
            return CLIENTS[key]
    return None
