"""The storage interface: what the store needs of a place that keeps image bytes.

A narrow base class in the manner of the SDK's extensions: a backend overrides the
operations, and inherits ``read`` and ``check`` built from them. Names are flat file
names the store chose (``image_filename``): one segment of safe characters, so no name
can reach outside the folder or the bucket prefix.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio

CHUNK = 1 << 20
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


class StorageError(Exception):
    """Raised when bytes cannot be written, read or listed; the message is for a person
    and never holds a credential."""


def check_name(name: str) -> str:
    """``name`` if it is one safe, visible segment; else :class:`StorageError`."""
    if not _NAME.fullmatch(name) or ".." in name:
        raise StorageError(f"not a storable image name: {name[:80]!r} (one segment of "
                           "letters, digits, '.', '_' or '-', not starting with '.')")
    return name


class ImageStorage:
    """Where image bytes live. Writes are atomic: afterwards the name holds the complete
    new bytes, or (on any failure) nothing new is visible under it."""

    kind = "abstract"

    async def put(
        self, name: str, data: bytes, content_type: str,
        before_commit: Callable[[], object] | None = None,
    ) -> None:
        """Store ``data`` under ``name``. ``before_commit`` runs after the bytes are safe
        but before they become visible; if it raises, nothing is stored."""
        raise NotImplementedError

    async def put_file(self, name: str, path: Path, content_type: str) -> None:
        """Store the file at ``path`` under ``name`` (a backend may stream it)."""
        data = await anyio.Path(path).read_bytes()
        await self.put(name, data, content_type)

    def child(self, folder: str) -> ImageStorage:
        """A storage of the same kind one level below this one (for partial previews)."""
        raise NotImplementedError

    def stream(self, name: str, chunk_size: int = CHUNK) -> AsyncIterator[bytes]:
        """The bytes under ``name`` in chunks (:class:`StorageError` if absent)."""
        raise NotImplementedError

    async def size(self, name: str) -> int | None:
        """The size of ``name`` in bytes, or None when nothing is stored under it."""
        raise NotImplementedError

    async def delete(self, name: str) -> bool:
        """Remove ``name``; False when it was not there."""
        raise NotImplementedError

    async def names(self) -> list[str]:
        """Every visible name stored (not temporary files or probes), sorted."""
        raise NotImplementedError

    def describe(self) -> str:
        """Where the bytes go, for logs and doctor (never a credential)."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections; the default holds none."""

    async def read(self, name: str) -> bytes:
        return b"".join([chunk async for chunk in self.stream(name)])

    async def check(self) -> None:
        """Write, read back and remove a probe (readiness, doctor); raises on failure."""
        probe = f"ttapi-mcp-probe-{secrets.token_hex(6)}.bin"
        payload = b"probe " + secrets.token_bytes(8)
        await self.put(probe, payload, "application/octet-stream")
        try:
            if await self.read(probe) != payload:
                raise StorageError(f"{self.describe()}: a probe read back different bytes")
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(10):  # never left behind
                await self.delete(probe)
