"""A test host for the MCP App: a page in headless Chromium that plays the host side.

The page loads the app's HTML (read from the real server as a ui:// resource) into a
sandboxed iframe, answers ``ui/initialize``, delivers a tool's input and result, and
forwards the app's ``tools/call`` and ``resources/read`` to Python, where a real
``mcp.Client`` sends them to the real server over streamable HTTP. It records what the
app asked for, so tests can assert on the calls the app made.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--no-first-run", "--disable-sync"]
SCREENSHOTS = Path(os.environ.get("TTAPI_SCREENSHOTS",
                                  Path(__file__).resolve().parent.parent / "build" / "screenshots"))

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason="chromium is not installed (.ci/run installs it)")

HOST_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>test host</title>
<style>body{margin:0;font:13px sans-serif} iframe{border:0;width:100%;height:100vh}</style>
</head><body><iframe id="app" sandbox="allow-scripts"></iframe><script>
const frame = document.getElementById("app");
window.appReady = false; window.appCalls = []; window.appLog = [];
function post(msg) { frame.contentWindow.postMessage(Object.assign({jsonrpc: "2.0"}, msg), "*"); }
window.addEventListener("message", async (event) => {
  if (event.source !== frame.contentWindow) return;
  const m = event.data;
  if (!m || m.jsonrpc !== "2.0") return;
  window.appLog.push(m.method || "response");
  if (m.method === "ui/initialize") {
    post({id: m.id, result: {protocolVersion: "2026-01-26",
      hostInfo: {name: "ttapi-test-host", version: "1"},
      hostCapabilities: {serverTools: {}, serverResources: {}},
      hostContext: window.hostContext || {theme: "light", displayMode: "inline"}}});
  } else if (m.method === "ui/notifications/initialized") {
    window.appReady = true;
  } else if (m.method === "tools/call" || m.method === "resources/read") {
    window.appCalls.push({method: m.method, params: m.params});
    try {
      const answer = await window.mcpForward(m.method, JSON.stringify(m.params));
      post({id: m.id, result: JSON.parse(answer)});
    } catch (err) {
      post({id: m.id, error: {code: -32000, message: String(err)}});
    }
  } else if (m.id !== undefined) {
    post({id: m.id, result: {}});
  }
});
window.loadApp = (html) => { frame.srcdoc = html; };
window.deliver = (args, result) => {
  post({method: "ui/notifications/tool-input", params: {arguments: args}});
  post({method: "ui/notifications/tool-result", params: result});
};
</script></body></html>"""


def wire(result: Any) -> dict[str, Any]:
    """A pydantic MCP result as it travels on the wire (camelCase, no nulls)."""
    return dict(result.model_dump(by_alias=True, mode="json", exclude_none=True))


class AppHost:
    """The host page, its app frame and the MCP client behind it."""

    def __init__(self, page: Any, client: Any) -> None:
        self.page = page
        self.client = client

    @property
    def app(self) -> Any:
        return self.page.frame_locator("#app")

    async def forward(self, method: str, params_json: str) -> str:
        params = json.loads(params_json)
        if method == "tools/call":
            result = await self.client.call_tool(params["name"], params.get("arguments") or {})
        else:
            result = await self.client.read_resource(params["uri"])
        return json.dumps(wire(result))

    async def open(self, tool: str | None = None) -> None:
        """Load the app from the server's ui:// resource and wait for its handshake."""
        from ttapi_mcp.server.apps import VIEWER_URI

        read = await self.client.read_resource(VIEWER_URI)
        html = read.contents[0].text
        context = {"theme": "light", "displayMode": "inline"}
        if tool:
            context["toolInfo"] = {"tool": {"name": tool, "inputSchema": {"type": "object"}}}
        await self.page.evaluate("c => { window.hostContext = c; }", context)
        await self.page.evaluate("html => window.loadApp(html)", html)
        await self.page.wait_for_function("window.appReady === true", timeout=15000)

    async def deliver(self, args: dict[str, Any], result: Any) -> None:
        await self.page.evaluate("([a, r]) => window.deliver(a, r)", [args, wire(result)])

    async def calls(self) -> list[dict[str, Any]]:
        return list(await self.page.evaluate("window.appCalls"))

    async def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        # The frame itself: a full-page shot of the host resized the frame mid-paint.
        await self.page.locator("#app").screenshot(path=str(path), animations="disabled")
        return path

    async def decodable_images(self, selector: str) -> int:
        """How many images under ``selector`` have a source that decodes to real pixels,
        loaded or not yet (lazy tiles below the fold load only when scrolled to)."""
        return int(await self.app.locator(selector).evaluate_all(
            """els => Promise.all(els.map(e => { const i = new Image(); i.src = e.src;
                 return i.decode().then(() => i.naturalWidth > 0, () => false); }))
               .then(ok => ok.filter(Boolean).length)"""))

    async def decoded_images(self, selector: str) -> int:
        """How many images under ``selector`` in the app have decoded (not broken, not empty)."""
        return int(await self.app.locator(selector).evaluate_all(
            "els => els.filter(e => e.complete && e.naturalWidth > 0).length"))


@asynccontextmanager
async def browser_page(width: int = 1100, height: int = 900) -> AsyncIterator[Any]:
    """A page of headless system Chromium showing the host page."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(20000)
            yield page
        finally:
            await browser.close()


@asynccontextmanager
async def app_host(url: str) -> AsyncIterator[AppHost]:
    """The host page wired to a real client of the server at ``url`` that renders Apps."""
    from mcp import Client
    from mcp.client.extension import advertise
    from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID

    ui = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
    async with Client(url, extensions=[ui]) as client, browser_page() as page:
        host = AppHost(page, client)
        await page.expose_function("mcpForward", host.forward)
        await page.set_content(HOST_PAGE)
        yield host
