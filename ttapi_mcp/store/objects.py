"""Image bytes in shared storage: the object is the record of truth, the folder a copy.

With ``storage_url`` set, every server still writes each image atomically into its own
output folder (so paths in answers are real files on the server that gave them, and
previews read local bytes) while it puts the object, and inserts the row only when both
are done: a row always has its object. A server asked for an image it does not hold
(saved by another replica) streams the object into its folder first, in chunks, into a
temp file renamed into place, so reads of resources, previews, the gallery and edits
never hold a whole download in memory twice. Without shared storage every method here
is the folder alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from pathlib import Path, PureWindowsPath

import anyio
import anyio.to_thread

from ..filenames import safe_child, temp_filename
from ..storage import ImageStorage, StorageError, check_name
from .models import StoreError

log = logging.getLogger("ttapi_mcp.store")


class ObjectsMixin:
    """Shared image bytes; mixed into :class:`ImageStore`, which owns ``output_dir``."""

    output_dir: Path
    storage: ImageStorage | None = None
    _copying: dict[str, anyio.Lock]

    async def put_object(self, path: Path, mime: str, data: bytes | None = None,
                         name: str | None = None) -> None:
        """Put the file just written at ``path`` (or ``data``) under its name (or
        ``name``); no-op alone.

        A failure raises :class:`StoreError` saying the local file is kept, so the paid
        image survives and ``doctor --fix`` can record it once the storage is back.
        """
        if self.storage is None:
            return
        try:
            if data is None:
                await self.storage.put_file(name or path.name, path, mime)
            else:
                await self.storage.put(name or path.name, data, mime)
        except StorageError as exc:
            raise StoreError(f"{exc}; the image is kept at {path} but not recorded: run "
                             "'ttapi-mcp doctor --fix' once the storage answers") from None

    async def drop_object(self, path: Path) -> None:
        """Best effort: remove the object of an image that could not be saved."""
        if self.storage is not None:
            try:
                await self.storage.delete(object_name(path))
            except StorageError as exc:  # doctor reports it as an object without a row
                log.warning("could not remove the object of an unsaved image: %s", exc)

    async def local_copy(self, path: Path, size: int | None = None,
                         folder: Path | None = None,
                         storage: ImageStorage | None = None) -> Path:
        """A readable local file of the stored image recorded at ``path``.

        Alone: ``path`` itself. Shared: this server's copy in ``folder`` (the output
        folder by default), fetched from the storage when absent or of the wrong size.
        """
        storage = storage or self.storage
        if storage is None:
            return Path(path)
        folder = folder or self.output_dir
        try:
            local = folder / check_name(object_name(path))  # one plain segment: stays inside
        except StorageError as exc:
            raise StoreError(str(exc)) from None
        if await _has_size(local, size):
            return local
        # One download per name at a time in this process; the others find its copy.
        lock = self._copying.setdefault(str(local), anyio.Lock())
        try:
            async with lock:
                if await _has_size(local, size):
                    return local
                return await self._download(storage, local, size)
        finally:
            if not lock.statistics().tasks_waiting and not lock.locked():
                self._copying.pop(str(local), None)

    async def _download(self, storage: ImageStorage, local: Path, size: int | None) -> Path:
        folder = local.parent
        tmp = safe_child(folder, temp_filename(f"{local.name}.{secrets.token_hex(4)}"))
        try:
            await anyio.to_thread.run_sync(lambda: folder.mkdir(parents=True, exist_ok=True))
            async with await anyio.open_file(tmp, "xb") as out:
                async for chunk in storage.stream(local.name):
                    await out.write(chunk)
            if not await _has_size(tmp, size):
                raise StoreError(f"the object {local.name} in {storage.describe()} has a "
                                 f"different size than its record ({size} bytes)")
            await anyio.to_thread.run_sync(os.replace, tmp, local)
        except StorageError as exc:
            raise StoreError(str(exc)) from None
        except OSError as exc:
            raise StoreError(f"cannot copy {local.name} from {storage.describe()} into "
                             f"{folder}: {exc.strerror or exc}") from None
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        return local

    async def object_names(self) -> set[str] | None:
        """Every image object's name, or None without shared storage."""
        if self.storage is None:
            return None
        try:
            return set(await self.storage.names())
        except StorageError as exc:
            raise StoreError(str(exc)) from None

    async def storage_size(self, name: str) -> int | None:
        """The stored object's size (None: absent, or no shared storage)."""
        if self.storage is None:
            return None
        try:
            return await self.storage.size(name)
        except StorageError as exc:
            raise StoreError(str(exc)) from None

    async def has_object(self, path: Path | str) -> bool:
        """Is the image recorded at ``path`` stored? (alone: is the file there?)"""
        if self.storage is None:
            return await anyio.to_thread.run_sync(Path(path).is_file)
        return await self.storage_size(object_name(path)) is not None


def object_name(path: Path | str) -> str:
    """The object's name: the last part of a recorded path, whichever system wrote it."""
    return PureWindowsPath(str(path)).name


async def _has_size(path: Path, size: int | None) -> bool:
    try:
        stat = await anyio.to_thread.run_sync(path.stat)
    except OSError:
        return False
    return size is None or stat.st_size == size
