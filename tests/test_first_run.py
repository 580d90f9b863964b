"""First run: a server without a key lists its tools, and its first answer says what to do.

The client names itself in clientInfo; the error then names that client's configuration
file (the one `ttapi-mcp install` writes). The end-to-end test runs install, then starts
the server exactly as the written entry says and makes a real call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import make_server_settings, mcp_client
from mcp_types import Implementation

from ttapi_mcp import __version__
from ttapi_mcp.emulator import Emulator
from ttapi_mcp.install import CLIENTS, client_from_info, config_path
from ttapi_mcp.install.hints import missing_key_message

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-first-run-5b8e1d0c7a2f"

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(("reported", "client"), [
    ("claude-ai", "claude-desktop"), ("Claude Desktop", "claude-desktop"),
    ("claude-code", "claude-code"), ("cursor-vscode", "cursor"),
    ("Visual Studio Code", "vscode"), ("Visual Studio Code - Insiders", "vscode"),
    ("windsurf-client", "windsurf"), ("mcp-inspector", None), ("", None),
])
def test_client_is_recognised_from_its_client_info(reported: str, client: str | None) -> None:
    found = client_from_info(reported)
    assert (found.name if found else None) == client


@pytest.mark.parametrize("reported", ["claude-ai", "cursor-vscode", "Visual Studio Code"])
async def test_first_call_names_the_clients_file(
    emulator: Emulator, tmp_path: Path, client_mode: str, reported: str
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path, api_key=None)
    info = Implementation(name=reported, version="1.0")
    async with mcp_client(settings, client_mode, client_info=info) as client:
        assert len((await client.list_tools()).tools) == 4
        result = await client.call_tool("generate_image", {"prompt": "a cat"})
    assert result.is_error
    text = result.content[0].text
    client_def = client_from_info(reported)
    assert client_def is not None
    assert f"ttapi-mcp install {client_def.name}" in text
    assert str(config_path(client_def.name)) in text
    assert client_def.restart in text and "nothing was billed" in text
    assert emulator.api_requests() == []


async def test_an_unknown_client_gets_every_file_and_the_install_command(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = make_server_settings(emulator.base_url, tmp_path, api_key=None)
    async with mcp_client(settings, "legacy",
                          client_info=Implementation(name="my-agent", version="0")) as client:
        result = await client.call_tool("gpt4o_image", {"prompt": "draw"})
    text = result.content[0].text
    assert result.is_error and "ttapi-mcp install CLIENT" in text
    for name in CLIENTS:
        assert str(config_path(name)) in text, name
    assert emulator.api_requests() == []


def test_message_for_each_platform_layout(tmp_path: Path) -> None:
    mac = missing_key_message("claude-ai", "darwin", tmp_path)
    assert str(tmp_path / "Library/Application Support/Claude/claude_desktop_config.json") in mac
    win = missing_key_message("claude-ai", "win32", tmp_path, {"APPDATA": "C:/Users/me/AppData"})
    assert "C:/Users/me/AppData/Claude/claude_desktop_config.json" in win


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTAPI_")}
    env.update({"HOME": str(home), "PYTHONPATH": str(REPO), "XDG_CONFIG_HOME": ""}, **extra)
    return env


async def test_install_then_start_the_server_exactly_as_the_entry_says(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Without a key the stdio server names the file; after install it makes a real call."""
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    home = tmp_path / "home"
    path = home / ".config" / "Claude" / "claude_desktop_config.json"
    info = Implementation(name="claude-ai", version="0.14")

    async def call(command: str, args: list[str], env: dict[str, str]) -> Any:
        params = StdioServerParameters(command=command, args=args, env=env, cwd="/")
        with open(tmp_path / "stderr.log", "a") as errlog, anyio.fail_after(60):
            async with Client(stdio_client(params, errlog=errlog), mode="legacy",
                              client_info=info) as client:
                assert len((await client.list_tools()).tools) == 4
                return await client.call_tool("generate_image", {
                    "prompt": "a first owl", "model": "dall-e-2", "size": "256x256"})

    before = await call(sys.executable, ["-m", "ttapi_mcp", "serve"], _env(
        home, TTAPI_OUTPUT_DIR=str(tmp_path / "out")))
    assert before.is_error and str(path) in before.content[0].text
    assert "ttapi-mcp install claude-desktop" in before.content[0].text
    assert emulator.api_requests() == []

    installed = subprocess.run(
        [sys.executable, "-m", "ttapi_mcp", "install", "claude-desktop",
         "--base-url", str(emulator.base_url), "--output-dir", str(tmp_path / "pictures")],
        env=_env(home, TTAPI_API_KEY=KEY), stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=60)
    assert installed.returncode == 0, installed.stderr
    entry = json.loads(path.read_text())["mcpServers"]["ttapi"]
    # The client gives the server only what the entry says (plus PYTHONPATH for this checkout).
    env = {**entry["env"], "PYTHONPATH": str(REPO), "HOME": str(home)}
    after = await call(entry["command"], entry["args"], env)
    assert not after.is_error, after.content
    saved = Path(after.structured_content["images"][0]["path"])
    assert saved.parent == tmp_path / "pictures" and saved.is_file()


def test_version_and_doctor_say_which_installation_runs(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "ttapi_mcp"]
    env = _env(tmp_path, TTAPI_OUTPUT_DIR=str(tmp_path / "out"),
               TTAPI_BASE_URL="http://127.0.0.1:9")
    version = subprocess.run([*run, "--version"], env=env, capture_output=True, text=True,
                             timeout=60)
    package = str(REPO / "ttapi_mcp")
    expected = f"Python {sys.version_info.major}.{sys.version_info.minor}."
    assert version.stdout.startswith(f"ttapi-mcp {__version__} from {package} ")
    assert expected in version.stdout and sys.executable in version.stdout
    doctor = subprocess.run([*run, "doctor", "--json"], env=env, capture_output=True,
                            text=True, timeout=60)
    first = json.loads(doctor.stdout)["checks"][0]
    assert first["name"] == "installation" and package in first["detail"]
    assert __version__ in first["detail"] and expected in first["detail"]
