"""The cold-start baseline: a bare MCPServer with one trivial tool, served over stdio.

It pays for the interpreter and the MCP SDK and nothing else, so the ratio against it
shows what ttapi-mcp adds to a client's wait at every session start.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

server: MCPServer = MCPServer(name="minimal")


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


if __name__ == "__main__":
    server.run("stdio")
