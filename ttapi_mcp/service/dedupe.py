"""Duplicate-call protection: the same paid call, made again, attaches to the first job.

Why: an agent whose client timed out retries the very same call, and would pay twice.
Two calls are the same when the tool, the effective arguments (defaults filled in, the
presentation-only ones left out) and the input images *by content* (sha256 of the
resolved bytes, so a path and a ttapi:// URI of one image match) are the same.

While the first job runs, in this server or another one on the same store, the second
call waits for it (see :meth:`ImageStore.start_job`). With ``dedupe_window_seconds``
above 0, a call within that many seconds after an identical job *succeeded* gets its
result too (found in the job table, so it works across restarts). Callers who really
want a second, different draw pass ``dedupe=false``.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import anyio.to_thread

from ttapi_mcp.store import ImageStore, JobRecord
from ttapi_mcp.store.files import sha256_file
from ttapi_mcp.store.users import LOCAL_USER

PRESENTATION_ONLY = frozenset({"preview", "wait", "dedupe"})


def call_key(tool: str, args: dict[str, Any], input_hashes: list[str] | None = None) -> str:
    """A digest naming one paid call: tool, effective arguments and input contents."""
    kept = {k: v for k, v in args.items() if v is not None and k not in PRESENTATION_ONLY}
    doc = {"tool": tool, "args": kept, "inputs": input_hashes or []}
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def user_key(key: str, user: str | None) -> str:
    """The call's key for one signed-in user: identical calls of two users are two calls.
    The one local user keeps the plain key (and so the keys of older rows)."""
    if user is None or user == LOCAL_USER:
        return key
    return hashlib.sha256(f"{user}\n{key}".encode()).hexdigest()


async def file_hashes(paths: list[Path]) -> list[str]:
    """sha256 of each file, read in a worker thread."""
    return [await anyio.to_thread.run_sync(sha256_file, p) for p in paths]


async def recent_success(store: ImageStore, key: str, window: float) -> JobRecord | None:
    """The newest succeeded job with this key that ended within ``window`` seconds, in
    any server on this store (found by the indexed ``dedupe_key`` column)."""
    if window <= 0:
        return None
    return await store.recent_success(key, time.time() - window)
