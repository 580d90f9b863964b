"""Unpack a .mcpb bundle and start its server exactly as the manifest says.

`${__dirname}` becomes the unpacked folder and each `${user_config.KEY}` the value a user
would enter (the key, an image folder, the emulator's URL as base URL). The server is then
driven over real stdio: its tools are listed and compared with the manifest's, and one
image is generated on the built-in emulator and must land in the chosen folder.

    python packaging/mcpb/check.py dist/ttapi-mcp.mcpb
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import anyio

KEY = "sk-bundle-check-3c9d1e7f5a"


def substitute(value: str, dirname: Path, user_config: dict[str, str]) -> str:
    value = value.replace("${__dirname}", str(dirname))
    return re.sub(r"\$\{user_config\.([A-Za-z0-9_]+)\}",
                  lambda m: user_config.get(m.group(1), ""), value)


def launch_spec(bundle_dir: Path, user_config: dict[str, str]) -> tuple[str, list[str],
                                                                         dict[str, str]]:
    """(command, args, env) of the manifest's mcp_config, with every variable substituted."""
    manifest = json.loads((bundle_dir / "manifest.json").read_text(encoding="utf-8"))
    config = dict(manifest["server"]["mcp_config"])
    overrides = config.pop("platform_overrides", {})
    plat = "win32" if sys.platform.startswith("win") else sys.platform
    config.update(overrides.get(plat, {}))
    return (substitute(config["command"], bundle_dir, user_config),
            [substitute(a, bundle_dir, user_config) for a in config.get("args", [])],
            {k: substitute(v, bundle_dir, user_config) for k, v in config.get("env", {}).items()})


async def run_bundle(bundle: Path, base_url: str, work: Path) -> dict[str, Any]:
    """Start the unpacked bundle's server; returns what it answered."""
    import os

    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    unpacked = work / "unpacked"
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(unpacked)
    manifest = json.loads((unpacked / "manifest.json").read_text(encoding="utf-8"))
    images = work / "images"
    command, args, env = launch_spec(unpacked, {"api_key": KEY, "output_dir": str(images),
                                                "base_url": base_url})
    # Clients start servers with a small environment: no PYTHONPATH, no virtual environment.
    base_env = {k: os.environ[k] for k in ("PATH", "HOME", "SYSTEMROOT", "TMPDIR")
                if k in os.environ}
    params = StdioServerParameters(command=command, args=args, env={**base_env, **env},
                                   cwd=str(work))
    # Which installation the manifest's command runs: it must be the bundle's own copy.
    version = subprocess.run([command, args[0], "--version"], env={**base_env, **env},
                             capture_output=True, text=True, timeout=60).stdout
    log = work / "server-stderr.log"
    with open(log, "w") as errlog, anyio.fail_after(120):
        async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
            tools = (await client.list_tools()).tools
            prompts = (await client.list_prompts()).prompts
            result = await client.call_tool("generate_image", {
                "prompt": "a bundled lighthouse", "model": "dall-e-2", "size": "256x256"})
    return {"manifest": manifest, "tools": [t.name for t in tools],
            "prompts": [p.name for p in prompts], "result": result, "images": images,
            "stderr": log.read_text(errors="replace"), "unpacked": unpacked,
            "version": version}


def check(bundle: Path) -> list[str]:
    """Problems found, run against an in-process emulator (no network)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from ttapi_mcp.emulator import Emulator, EmulatorServer

    work = Path(tempfile.mkdtemp(prefix="ttapi-mcpb-check-"))
    with EmulatorServer(Emulator(), host="127.0.0.1", port=0) as emulator:
        emulator.emulator.options.api_keys = [KEY]  # only the key from user_config passes
        seen = anyio.run(run_bundle, bundle, emulator.base_url, work)
        requests = emulator.emulator.api_requests()
    found = []
    declared = sorted(t["name"] for t in seen["manifest"].get("tools", []))
    if sorted(seen["tools"]) != declared:
        found.append(f"tools {sorted(seen['tools'])} differ from the manifest's {declared}")
    declared_prompts = sorted(p["name"] for p in seen["manifest"].get("prompts", []))
    if sorted(seen["prompts"]) != declared_prompts:
        found.append(f"prompts {seen['prompts']} differ from the manifest's {declared_prompts}")
    result = seen["result"]
    if result.is_error:
        found.append(f"generate_image failed: {result.content[0].text[:300]}")
    else:
        path = Path(result.structured_content["images"][0]["path"])
        if path.parent != seen["images"] or not path.is_file():
            found.append(f"the image went to {path}, not to the configured folder")
    if not requests:
        found.append("nothing reached the emulator")
    if KEY in seen["stderr"]:
        found.append("the key appears in the server's log")
    if f"from {seen['unpacked'] / 'server' / 'lib' / 'ttapi_mcp'} " not in seen["version"]:
        found.append(f"the server did not run from the bundle: {seen['version']!r}")
    return found


def main() -> int:
    bundle = Path(sys.argv[1])
    found = check(bundle)
    for problem in found:
        print(f"{bundle}: {problem}", file=sys.stderr)
    if not found:
        print(f"{bundle}: started as its manifest says; tools listed and an image generated")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
