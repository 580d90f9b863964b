"""ttapi-mcp: an MCP server for TTAPI image models."""

__version__ = "0.1.0"
