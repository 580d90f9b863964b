"""`ttapi-mcp demo`: the whole product, end to end, on the built-in emulator, no key needed.

Starts the emulator on a loopback port, builds the real server against it, connects a
real MCP client, calls generate_image, and prints the structured result and the path
of the saved file.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
from pydantic import SecretStr

from ttapi_mcp.config import Settings, default_output_dir

DEFAULT_PROMPT = "a lighthouse on a rocky coast at dusk, warm light in the windows"
DEMO_KEY = "demo-key"


def demo_settings(settings: Settings, base_url: str) -> Settings:
    """The user's settings, pointed at the emulator; a temp folder unless one was configured."""
    output_dir = settings.output_dir
    database_path = settings.database_path
    if output_dir == default_output_dir():
        # Keep demo images out of the real image folder (and keep them after exit).
        output_dir = Path(tempfile.mkdtemp(prefix="ttapi-mcp-demo-"))
        database_path = None
    return settings.model_copy(update={
        "base_url": base_url, "api_key": SecretStr(DEMO_KEY), "output_dir": output_dir,
        "database_path": database_path, "dalle3_route": "v1",
    })


async def _call(settings: Settings, prompt: str) -> tuple[bool, dict[str, Any] | None, str]:
    from mcp import Client

    from ttapi_mcp.server.app import build_server

    async with Client(build_server(settings)) as client:
        result = await client.call_tool("generate_image", {"prompt": prompt})
    text = "\n".join(getattr(block, "text", "") for block in result.content if block.type == "text")
    return bool(result.is_error), result.structured_content, text


def run_demo(settings: Settings, prompt: str | None = None) -> int:
    """Run the demo; returns the exit code (0 on success)."""
    from ttapi_mcp.emulator import Emulator, EmulatorServer
    from ttapi_mcp.logs import configure_logging

    configure_logging("WARNING", [DEMO_KEY])
    prompt = prompt or DEFAULT_PROMPT
    with EmulatorServer(Emulator(), host="127.0.0.1", port=0) as emulator:
        local = demo_settings(settings, emulator.base_url)
        print(f"TTAPI emulator running at {emulator.base_url} (no real TTAPI call, no cost).")
        print(f"Calling generate_image through MCP with prompt: {prompt!r}\n")
        failed, structured, text = anyio.run(_call, local, prompt)
    if failed or not structured:
        print(f"The demo failed: {text}", file=sys.stderr)
        return 1
    print("Structured result:")
    print(json.dumps(structured, indent=2, ensure_ascii=False))
    for image in structured.get("images", []):
        print(f"\nSaved image: {image['path']}")
    print(
        "\nNext: add the server to your MCP client with `ttapi-mcp install CLIENT` "
        "(claude-desktop, claude-code, cursor, vscode or windsurf); it asks for your TTAPI key."
    )
    return 0
