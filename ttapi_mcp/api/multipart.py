"""Multipart parts for E2 edits, streamed from disk.

httpx2's multipart encoder reads each open file in 64 KiB chunks while sending and takes the
Content-Length from `fstat`, so passing open file objects streams them without holding the
whole upload in memory. Every image goes in a repeated `image[]` part (the OpenAI SDK's form
for a list, used even for one image, so the wire form never depends on the count).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import ExitStack
from typing import IO

from .models import UploadFile

IMAGE_FIELD = "image[]"
MASK_FIELD = "mask"

FilePart = tuple[str, tuple[str, IO[bytes], str]]
SentFn = Callable[[int, int], None]
"""``sent(bytes_read_so_far, total_bytes)``: upload progress over all parts."""


class UploadCounter:
    """Sums, over all parts, how far the encoder has read each file.

    Positions (not read sizes) are summed, so a retried upload that seeks back to the
    start counts again from zero instead of double-counting.
    """

    def __init__(self, on_sent: SentFn) -> None:
        self._on_sent = on_sent
        self._positions: dict[int, int] = {}
        self.total = 0

    def moved(self, part: int, position: int) -> None:
        self._positions[part] = position
        self._on_sent(sum(self._positions.values()), self.total)


class CountingFile:
    """A read-only file that reports each read to an :class:`UploadCounter`.

    It keeps ``fileno`` (so httpx2 still takes Content-Length from ``fstat``) and
    ``seek``/``tell`` (so the encoder can rewind for a retry).
    """

    def __init__(self, handle: IO[bytes], counter: UploadCounter, part: int) -> None:
        self._handle = handle
        self._counter = counter
        self._part = part

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size)
        self._counter.moved(self._part, self._handle.tell())
        return chunk

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._handle.seek(offset, whence)
        self._counter.moved(self._part, position)
        return position

    def tell(self) -> int:
        return self._handle.tell()

    def fileno(self) -> int:
        return self._handle.fileno()


def open_parts(
    images: list[UploadFile],
    mask: UploadFile | None,
    stack: ExitStack,
    on_sent: SentFn | None = None,
) -> list[FilePart]:
    """File parts in image order, then the mask; files stay open until `stack` closes.

    With ``on_sent``, each part reports how many bytes the encoder has read so far.
    """
    uploads = [*images, *([mask] if mask is not None else [])]
    names = [IMAGE_FIELD] * len(images) + [MASK_FIELD] * (mask is not None)
    counter = UploadCounter(on_sent) if on_sent is not None else None
    parts: list[FilePart] = []
    for index, (name, upload) in enumerate(zip(names, uploads, strict=True)):
        handle: IO[bytes] = stack.enter_context(open(upload.path, "rb"))  # noqa: SIM115
        if counter is not None:
            counter.total += os.fstat(handle.fileno()).st_size
            handle = CountingFile(handle, counter, index)  # type: ignore[assignment]
        parts.append((name, (upload.filename, handle, upload.content_type)))
    return parts
