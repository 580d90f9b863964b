"""Build the Claude Desktop bundle (`dist/ttapi-mcp.mcpb`) with the official MCPB CLI.

The bundle is a "python" MCPB: `server/main.py` starts ttapi-mcp from `server/lib`, which
holds the package and every dependency (pip-installed from the wheel). The manifest's
tools and prompts are read from the real server, so they cannot drift; the TTAPI key is a
sensitive `user_config` value the client stores, the output folder a directory picker.
Dependencies with compiled parts (pydantic-core, Pillow) make the bundle specific to the
platform and Python version it was built with; the manifest says which.

    python packaging/mcpb/build.py --wheel dist/ttapi_mcp-X-py3-none-any.whl --out dist
    python packaging/mcpb/build.py --lib-from-env --out DIR   # offline, from this environment

`mcpb validate` and `mcpb pack` run from $MCPB (a path to the CLI), else `mcpb` on PATH;
with `--zip-if-no-cli`, a missing CLI falls back to zipping the same folder (tests).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BUNDLE_NAME = "ttapi-mcp.mcpb"

MAIN_PY = '''"""Start ttapi-mcp from the libraries bundled next to this file."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

from ttapi_mcp.cli import main  # noqa: E402

sys.exit(main())
'''

USER_CONFIG = {
    "api_key": {
        "type": "string", "title": "TTAPI key", "sensitive": True, "required": True,
        "description": "Your TTAPI key (TT-API-KEY) from TTAPI's dashboard. Stored by Claude, "
                       "passed to the server as TTAPI_API_KEY.",
    },
    "output_dir": {
        "type": "directory", "title": "Image folder", "required": False,
        "default": "${HOME}/Pictures/ttapi-mcp",
        "description": "Where generated and edited images are saved.",
    },
    "base_url": {
        "type": "string", "title": "TTAPI base URL", "required": False,
        "default": "https://api.ttapi.io",
        "description": "https://api.ttapi.org is TTAPI's gateway for slow gpt-image-1 calls.",
    },
}


async def _declarations() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Tools and prompts as the real server declares them (prompt text with placeholders)."""
    from mcp import Client

    from ttapi_mcp.config import Settings
    from ttapi_mcp.server.app import build_server

    async with Client(build_server(Settings(output_dir=Path(tempfile.mkdtemp())))) as client:
        tools = (await client.list_tools()).tools
        prompts = (await client.list_prompts()).prompts
        texts = {}
        for prompt in prompts:
            names = [a.name for a in prompt.arguments or []]
            result = await client.get_prompt(prompt.name, {n: f"${{arguments.{n}}}"
                                                           for n in names})
            texts[prompt.name] = (names, result.messages[0].content.text)  # type: ignore[union-attr]
    return (
        [{"name": t.name, "description": (t.description or "").split("\n")[0]} for t in tools],
        [{"name": p.name, "description": p.description or "", "arguments": texts[p.name][0],
          "text": texts[p.name][1]} for p in prompts],
    )


def manifest() -> dict[str, Any]:
    import anyio

    from ttapi_mcp import __version__

    tools, prompts = anyio.run(_declarations)
    major, minor = sys.version_info.major, sys.version_info.minor
    python = f"{major}.{minor}"
    plat = "darwin" if sys.platform == "darwin" else (
        "win32" if sys.platform.startswith("win") else "linux")
    return {
        "manifest_version": "0.3",
        "name": "ttapi-mcp",
        "display_name": "TTAPI image models",
        "version": __version__,
        "description": "Create and edit images with gpt-image-1, DALL-E 2/3 and GPT-4o image "
                       "jobs through TTAPI.",
        "long_description": "Every argument is checked against the model's rules before "
                            "anything is sent; every image is saved to your image folder at "
                            "once and offered as a resource, with a small preview.",
        "author": {"name": "ttapi-mcp"},
        "icon": "icon.png",
        "license": "MIT",
        "keywords": ["images", "gpt-image-1", "dall-e", "ttapi"],
        "server": {
            "type": "python",
            "entry_point": "server/main.py",
            "mcp_config": {
                "command": "python3",
                "args": ["${__dirname}/server/main.py", "serve"],
                "env": {"TTAPI_API_KEY": "${user_config.api_key}",
                        "TTAPI_OUTPUT_DIR": "${user_config.output_dir}",
                        "TTAPI_BASE_URL": "${user_config.base_url}"},
                "platform_overrides": {"win32": {"command": "python"}},
            },
        },
        "tools": tools,
        "prompts": prompts,
        "user_config": USER_CONFIG,
        "compatibility": {
            "platforms": [plat],
            # Compiled dependencies are built for this Python version only.
            "runtimes": {"python": f">={python},<{major}.{minor + 1}"},
        },
        "_meta": {"io.github.ttapi-mcp": {"built_on": f"{platform.platform()} Python {python}"}},
    }


def icon(path: Path) -> None:
    """A 512 px icon drawn here, so no binary file lives in the repository."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (512, 512), (24, 32, 64))
    draw = ImageDraw.Draw(image)
    for i in range(0, 512, 8):
        draw.line([(0, i), (i, 0)], fill=(40 + i // 8, 70 + i // 12, 140), width=4)
    draw.rounded_rectangle([96, 136, 416, 376], radius=36, outline=(255, 214, 102), width=14)
    draw.ellipse([300, 170, 360, 230], fill=(255, 214, 102))
    draw.polygon([(120, 352), (220, 236), (292, 310), (330, 276), (392, 352)],
                 fill=(120, 200, 160))
    font = ImageFont.load_default(size=56)
    draw.text((256, 440), "TTAPI", fill=(255, 255, 255), font=font, anchor="mm")
    image.save(path, "PNG")


def lib_from_wheel(wheel: Path, lib: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(lib),
                    str(wheel)], check=True)


def lib_from_env(lib: Path) -> None:
    """Offline: this checkout's package plus the installed files of each dependency."""
    import importlib.metadata as metadata

    from packaging.requirements import Requirement

    shutil.copytree(REPO / "ttapi_mcp", lib / "ttapi_mcp",
                    ignore=shutil.ignore_patterns("__pycache__"))
    seen: set[str] = set()
    todo = [r for r in metadata.distribution("ttapi-mcp").requires or []]
    while todo:
        requirement = Requirement(todo.pop())
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        key = requirement.name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        dist = metadata.distribution(requirement.name)
        base = Path(str(dist.locate_file("")))
        for file in dist.files or []:
            source = base / file
            if ".." in file.parts or "__pycache__" in file.parts or not source.is_file():
                continue
            target = lib / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        todo += dist.requires or []


def mcpb_cli() -> list[str] | None:
    found = os.environ.get("MCPB") or shutil.which("mcpb")
    return [found] if found else None


def pack(folder: Path, out: Path, allow_zip: bool) -> None:
    cli = mcpb_cli()
    if cli is None:
        if not allow_zip:
            raise SystemExit("the MCPB CLI was not found: npm install @anthropic-ai/mcpb and "
                             "set MCPB=<path to mcpb>, or put it on PATH")
        print("MCPB CLI not found: zipping the bundle folder instead (no validation)")
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(folder).as_posix())
        return
    subprocess.run([*cli, "validate", str(folder / "manifest.json")], check=True)
    subprocess.run([*cli, "pack", str(folder), str(out)], check=True, stdout=subprocess.DEVNULL)


def build(out_dir: Path, wheel: Path | None, allow_zip: bool = False) -> Path:
    staging = Path(tempfile.mkdtemp(prefix="ttapi-mcpb-"))
    try:
        (staging / "server").mkdir()
        (staging / "server" / "main.py").write_text(MAIN_PY, encoding="utf-8")
        lib = staging / "server" / "lib"
        if wheel is not None:
            lib_from_wheel(wheel, lib)
        else:
            lib_from_env(lib)
        for cache in list(lib.rglob("__pycache__")):
            shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(lib / "bin", ignore_errors=True)
        icon(staging / "icon.png")
        (staging / "manifest.json").write_text(json.dumps(manifest(), indent=2) + "\n",
                                               encoding="utf-8")
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / BUNDLE_NAME
        target.unlink(missing_ok=True)
        pack(staging, target, allow_zip)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--wheel", type=Path, help="the built wheel to bundle")
    source.add_argument("--lib-from-env", action="store_true",
                        help="bundle this checkout with this environment's dependencies")
    parser.add_argument("--out", type=Path, default=REPO / "dist")
    parser.add_argument("--zip-if-no-cli", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    bundle = build(args.out, args.wheel, args.zip_if_no_cli)
    print(f"built {bundle} ({bundle.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
