"""Saving a result URL to disk: streamed, size-capped, atomic (temp file beside it, renamed)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import httpx2

from ..filenames import temp_filename
from .errors import DownloadError

CHUNK = 64 * 1024
EXPIRED_HINT = "The image may be lost: fetch the job again for a fresh URL, or re-run the request"


def too_large(host: str, limit: int) -> DownloadError:
    return DownloadError(
        f"The result image from {host} is larger than the {limit}-byte limit; download aborted",
        hint="Raise max_download_bytes if images this large are expected",
    )


async def save_stream(response: httpx2.Response, dest: Path, max_bytes: int, host: str) -> int:
    """Write the body to `dest` via a temp file in the same folder; returns the byte count.

    The temp file is removed on any failure, so no half-written image is ever left behind.
    It is named like every temp file of the output folder (``.<name>.<pid>.tmp``), so if
    the process is killed mid-download, the next start (or ``doctor --fix``) removes it.
    """
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_large(host, max_bytes)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / temp_filename(dest.name)
    try:
        written = 0
        with open(tmp, "xb") as out:
            async for chunk in response.aiter_bytes(CHUNK):
                written += len(chunk)
                if written > max_bytes:
                    raise too_large(host, max_bytes)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
        return written
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
