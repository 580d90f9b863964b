"""Multipart parts for E2 edits, streamed from disk.

httpx2's multipart encoder reads each open file in 64 KiB chunks while sending and takes the
Content-Length from `fstat`, so passing open file objects streams them without holding the
whole upload in memory. Every image goes in a repeated `image[]` part (the OpenAI SDK's form
for a list, used even for one image, so the wire form never depends on the count).
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import IO

from .models import UploadFile

IMAGE_FIELD = "image[]"
MASK_FIELD = "mask"

FilePart = tuple[str, tuple[str, IO[bytes], str]]


def open_parts(
    images: list[UploadFile], mask: UploadFile | None, stack: ExitStack
) -> list[FilePart]:
    """File parts in image order, then the mask; files stay open until `stack` closes."""
    parts: list[FilePart] = [(IMAGE_FIELD, _open(upload, stack)) for upload in images]
    if mask is not None:
        parts.append((MASK_FIELD, _open(mask, stack)))
    return parts


def _open(upload: UploadFile, stack: ExitStack) -> tuple[str, IO[bytes], str]:
    handle = stack.enter_context(open(upload.path, "rb"))  # noqa: SIM115
    return (upload.filename, handle, upload.content_type)
