"""The Claude Desktop bundle: built, unpacked, and started exactly as its manifest says.

Built offline from this checkout and this environment's dependencies (CI builds it from the
wheel with the official CLI's `validate` and `pack`, and runs the same check on it). The
official CLI is used here too when it is installed ($MCPB or `mcpb` on PATH).
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "packaging" / "mcpb"))
import build as mcpb_build  # noqa: E402
import check as mcpb_check  # noqa: E402

from ttapi_mcp import __version__  # noqa: E402


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mcpb_build.build(tmp_path_factory.mktemp("mcpb"), wheel=None, allow_zip=True)


def test_manifest_declares_the_server_its_settings_tools_and_prompts(bundle: Path) -> None:
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("manifest.json"))
        icon = Image.open(io.BytesIO(archive.read(manifest["icon"])))
    assert manifest["version"] == __version__ and manifest["manifest_version"] == "0.3"
    assert manifest["server"]["entry_point"] in names
    assert "server/lib/ttapi_mcp/cli.py" in names and "server/lib/mcp/__init__.py" in names
    env = manifest["server"]["mcp_config"]["env"]
    assert env["TTAPI_API_KEY"] == "${user_config.api_key}"
    config = manifest["user_config"]
    assert config["api_key"]["sensitive"] is True and config["api_key"]["type"] == "string"
    assert config["output_dir"]["type"] == "directory"
    assert config["base_url"]["default"] == "https://api.ttapi.io"
    assert {t["name"] for t in manifest["tools"]} == {"generate_image", "edit_image",
                                                     "gpt4o_image", "fetch_job"}
    assert len(manifest["prompts"]) >= 5
    assert all("${arguments." in p["text"] for p in manifest["prompts"] if p["arguments"])
    assert icon.format == "PNG" and icon.size == (512, 512)


def test_the_unpacked_bundle_starts_as_the_manifest_says(bundle: Path) -> None:
    """Tools listed, the key from user_config accepted upstream, the image in its folder."""
    assert mcpb_check.check(bundle) == []


def test_variables_are_substituted_like_the_client_does(tmp_path: Path) -> None:
    manifest = {"server": {"mcp_config": {
        "command": "python3", "args": ["${__dirname}/server/main.py", "serve"],
        "env": {"TTAPI_API_KEY": "${user_config.api_key}", "TTAPI_BASE_URL":
                "${user_config.base_url}"},
        "platform_overrides": {"win32": {"command": "python"}}}}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    command, args, env = mcpb_check.launch_spec(tmp_path, {"api_key": "k-1"})
    assert command == ("python" if sys.platform.startswith("win") else "python3")
    assert args == [f"{tmp_path}/server/main.py", "serve"]
    assert env == {"TTAPI_API_KEY": "k-1", "TTAPI_BASE_URL": ""}
