"""The command a client should run to start this installation of ttapi-mcp.

By default, the absolute path of the `ttapi-mcp` script next to the running Python: a
client started from a desktop launcher does not see the shell's PATH or virtual
environment. With ``--uvx``, `uvx` fetches and runs the package itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "ttapi-mcp"


def this_installation(platform: str | None = None) -> tuple[str, list[str]]:
    """(command, args) that start the server of the installation running this code."""
    platform = platform or sys.platform
    scripts = Path(sys.executable).parent
    script = scripts / ("ttapi-mcp.exe" if platform.startswith("win") else "ttapi-mcp")
    if script.is_file():
        return str(script), ["serve"]
    return sys.executable, ["-m", "ttapi_mcp", "serve"]


def ephemeral_note(prefix: str | None = None) -> str | None:
    """Why an absolute path to this installation may not last, or None.

    `uvx` runs a package from uv's cache, which `uv cache clean` (or a newer version)
    removes: a client pointed there would one day fail to start.
    """
    parts = Path(prefix or sys.prefix).parts
    if "uv" in parts and any(p.startswith(("archive-v", "builds-v")) for p in parts):
        return ("this copy of ttapi-mcp runs from uv's cache, which uv may clean; use --uvx "
                "(or --uvx-from SOURCE) so the client starts it through uvx")
    return None


def uvx(source: str | None = None) -> tuple[str, list[str]]:
    """`uvx ttapi-mcp serve`, or `uvx --from SOURCE ttapi-mcp serve` (a wheel, a git URL)."""
    if source:
        return "uvx", ["--from", source, PACKAGE, "serve"]
    return "uvx", [PACKAGE, "serve"]


def as_shell(command: str, args: list[str]) -> str:
    import shlex

    return " ".join(shlex.quote(part) for part in [command, *args])
