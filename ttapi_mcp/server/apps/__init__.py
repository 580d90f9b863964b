"""The MCP Apps surface (``io.modelcontextprotocol/ui``): one ``ui://`` page that is the
viewer of every image result and the gallery of the store, and the app-only tools it
calls. Only constants here, so the tool declarations can name the page without loading
the app.
"""

VIEWER_URI = "ui://ttapi-mcp/viewer.html"
"""The page every image tool is bound to (``_meta.ui.resourceUri``)."""

UI_META = {"ui": {"resourceUri": VIEWER_URI}}
"""``_meta`` for the four image tools: shown by the viewer where the host renders Apps."""
