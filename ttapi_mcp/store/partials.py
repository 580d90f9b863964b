"""Partial images of a streamed call (§11.4): preview files that belong to a job.

They are not results: they live beside the database (``partials/``), not in the output
folder, have no row in ``images`` and are never listed as result resources. Each is
written atomically and recorded with its job, image and partial index. With shared
storage each is also put under ``partials/`` of the bucket, in the background (a slow
bucket must not hold up the stream the partial came in), so whichever replica is asked
shows it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread

from ..imagefacts import sniff_bytes
from ..storage import ImageStorage, StorageError
from . import files
from .db import Database
from .objects import ObjectsMixin

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
PARTIAL_UPLOAD_SECONDS = 30.0
"""How long the upload of one partial preview may take before it is given up."""
log = logging.getLogger("ttapi_mcp.store")


@dataclass(frozen=True)
class PartialImage:
    """One saved partial image."""

    partial_id: str  # "<job_id>.<image>.<partial>", the ttapi://partials/ URI's tail
    job_id: str
    image_index: int
    partial_index: int
    path: Path
    mime: str
    bytes: int


class PartialsMixin(ObjectsMixin):
    """Partial images; mixed into :class:`ImageStore`, which owns ``_db``."""

    _db: Database
    database_path: Path
    _scope: Callable[..., tuple[str, list[Any]]]
    _partials_storage: ImageStorage | None = None
    _sharing: set[asyncio.Future[None]]

    @property
    def partials_dir(self) -> Path:
        return self.database_path.parent / "partials"

    def partials_storage(self) -> ImageStorage:
        """``partials/`` of the shared storage (one client, made on first use)."""
        assert self.storage is not None
        if self._partials_storage is None:
            self._partials_storage = self.storage.child("partials")
        return self._partials_storage

    async def save_partial(
        self, job_id: str, image_index: int, partial_index: int, data: bytes
    ) -> PartialImage:
        """Write the partial image at once and record it with its job."""
        facts = sniff_bytes(data, len(data))
        if facts.mime is None:
            raise ValueError("the partial image is not PNG, JPEG or WebP")
        folder = self.partials_dir
        name = f"{_SAFE.sub('_', job_id)}_image{image_index + 1}_partial{partial_index + 1}"
        final = folder / f"{name}.{facts.extension}"

        def write() -> None:
            folder.mkdir(parents=True, exist_ok=True)
            files.write_atomic(folder, final, data)

        await anyio.to_thread.run_sync(write)
        partial = PartialImage(f"{job_id}.{image_index}.{partial_index}", job_id, image_index,
                               partial_index, final, facts.mime, len(data))
        row = (partial.partial_id, job_id, image_index, partial_index, str(final), facts.mime,
               len(data), time.time())
        sql = ("INSERT INTO partial_images (partial_id, job_id, image_index,"
               " partial_index, path, mime, bytes, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
               " ON CONFLICT(partial_id) DO UPDATE SET job_id = excluded.job_id,"
               " image_index = excluded.image_index, partial_index = excluded.partial_index,"
               " path = excluded.path, mime = excluded.mime, bytes = excluded.bytes,"
               " created_at = excluded.created_at")
        await self._db.run(lambda c: c.execute(sql, row))
        if self.storage is not None:  # a preview: never hold up the stream it came in
            task = asyncio.ensure_future(self._share_partial(final.name, data, facts.mime))
            self._sharing.add(task)
            task.add_done_callback(self._sharing.discard)
        return partial

    async def finish_sharing(self, seconds: float = 5.0) -> None:
        """Let partial uploads under way end (at most ``seconds``), then give them up."""
        pending = list(self._sharing)
        if pending:
            _, late = await asyncio.wait(pending, timeout=seconds)
            for task in late:
                task.cancel()

    async def _share_partial(self, name: str, data: bytes, mime: str) -> None:
        """Put a partial in ``partials/`` of the bucket; until then (or if that fails)
        only this server shows it."""
        with anyio.move_on_after(PARTIAL_UPLOAD_SECONDS):
            try:
                await self.partials_storage().put(name, data, mime)
            except StorageError as exc:
                log.warning("partial image %s not shared: %s", name, exc)

    async def local_partial(self, partial: PartialImage) -> Path:
        """A readable local file of ``partial`` (fetched from shared storage if need be)."""
        if self.storage is None:
            return partial.path
        return await self.local_copy(partial.path, partial.bytes, self.partials_dir,
                                     self.partials_storage())

    async def get_partial(self, partial_id: str) -> PartialImage | None:
        scope, user = self._scope("j.user_id")
        sql = ("SELECT p.* FROM partial_images p JOIN jobs j ON j.job_id = p.job_id"
               f" WHERE p.partial_id = ?{scope}")
        row = await self._db.run(lambda c: c.execute(sql, (partial_id, *user)).fetchone())
        return _partial(row) if row else None

    async def partials_for_job(self, job_id: str) -> list[PartialImage]:
        scope, user = self._scope("j.user_id")
        sql = ("SELECT p.* FROM partial_images p JOIN jobs j ON j.job_id = p.job_id"
               f" WHERE p.job_id = ?{scope} ORDER BY p.image_index, p.partial_index")
        rows = await self._db.run(lambda c: c.execute(sql, (job_id, *user)).fetchall())
        return [_partial(r) for r in rows]


def _partial(row: object) -> PartialImage:
    r = dict(row)  # type: ignore[call-overload]
    return PartialImage(r["partial_id"], r["job_id"], r["image_index"], r["partial_index"],
                        Path(r["path"]), r["mime"], r["bytes"])
