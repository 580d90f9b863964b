"""Which installation is running: its version, where it lives and which Python runs it.

With a clone, a virtual environment, a `pip install` and a `uvx` cache on one machine,
"which ttapi-mcp did my client start?" is a real question; `--version` and `doctor`
answer it.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

from ttapi_mcp import __version__


def package_dir() -> Path:
    return Path(__file__).resolve().parent


def installation() -> str:
    """One line: version, package folder, Python version and interpreter."""
    return (f"ttapi-mcp {__version__} from {package_dir()} "
            f"(Python {platform.python_version()}, {sys.executable})")
