"""Image bytes in a local folder: the default, and the same bytes as it always wrote.

Writes go through :func:`ttapi_mcp.store.files.write_atomic` (temp file beside the
target, fsync, rename, fsync of the folder), the very function the store uses, so the
folder looks exactly as before: same names, same temp files, same durability.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import anyio.to_thread

from ..filenames import is_temp_name, safe_child, temp_filename
from ..store import files
from .base import CHUNK, ImageStorage, StorageError, check_name


class LocalFolder(ImageStorage):
    """A folder on this machine (created on first write)."""

    kind = "local"

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder).expanduser().absolute()

    def path_of(self, name: str) -> Path:
        return safe_child(self.folder, check_name(name))

    async def put(
        self, name: str, data: bytes, content_type: str,
        before_commit: Callable[[], object] | None = None,
    ) -> None:
        final = self.path_of(name)

        def write() -> None:
            self.folder.mkdir(parents=True, exist_ok=True)
            files.write_atomic(self.folder, final, data, before_commit)

        try:
            await anyio.to_thread.run_sync(write)
        except OSError as exc:
            raise StorageError(f"cannot write {final}: {exc.strerror or exc}") from None

    def child(self, folder: str) -> LocalFolder:
        return LocalFolder(self.folder / check_name(folder))

    async def stream(self, name: str, chunk_size: int = CHUNK) -> AsyncIterator[bytes]:
        path = self.path_of(name)
        try:
            handle = await anyio.open_file(path, "rb")
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from None
        async with handle:
            while chunk := await handle.read(chunk_size):
                yield chunk

    async def size(self, name: str) -> int | None:
        path = self.path_of(name)
        try:
            stat = await anyio.to_thread.run_sync(path.stat)
        except FileNotFoundError:
            return None
        return stat.st_size

    async def delete(self, name: str) -> bool:
        path = self.path_of(name)
        try:
            await anyio.to_thread.run_sync(path.unlink)
        except FileNotFoundError:
            return False
        return True

    async def names(self) -> list[str]:
        def scan() -> list[str]:
            if not self.folder.is_dir():
                return []
            return sorted(e.name for e in os.scandir(self.folder)
                          if e.is_file(follow_symlinks=False) and not e.name.startswith(".")
                          and not is_temp_name(e.name))

        return await anyio.to_thread.run_sync(scan)

    def describe(self) -> str:
        return f"folder {self.folder}"

    async def check(self) -> None:
        """A hidden temp-named probe, so a folder scan running meanwhile never sees it."""

        def probe() -> None:  # no mkdir: a vanished folder is a failure to report
            path = self.folder / temp_filename(f"probe-{secrets.token_hex(4)}")
            with open(path, "xb") as f:
                f.write(b"probe")
            path.unlink()

        try:
            await anyio.to_thread.run_sync(probe)
        except OSError as exc:
            raise StorageError(f"cannot write in {self.folder}: {exc.strerror or exc}") from None
