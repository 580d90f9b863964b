"""One function per user action: validate → resolve inputs → call TTAPI → store → result.

The server layer calls only these; they know nothing of MCP beyond the result model,
and report what they are doing through a ``progress`` callback.

The names below load on first use (PEP 562): importing a light submodule such as
``.results`` (needed to declare the tools) must not pull in the HTTP client, the store
and every action, which a server answering ``tools/list`` at start-up does not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .common import NO_KEY_MESSAGE, ProgressFn, ServiceError, Services, no_progress
    from .images import edit_image, generate_image
    from .jobs import fetch_job, submit_gpt4o

_HOMES = {
    "NO_KEY_MESSAGE": "common",
    "ProgressFn": "common",
    "ServiceError": "common",
    "Services": "common",
    "no_progress": "common",
    "edit_image": "images",
    "generate_image": "images",
    "fetch_job": "jobs",
    "submit_gpt4o": "jobs",
}

__all__ = [
    "NO_KEY_MESSAGE",
    "ProgressFn",
    "ServiceError",
    "Services",
    "edit_image",
    "fetch_job",
    "generate_image",
    "no_progress",
    "submit_gpt4o",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
