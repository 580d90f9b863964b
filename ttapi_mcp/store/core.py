"""Images on disk plus a SQLite record of images, requests and jobs.

Design choices, and why:

- **File first, then row.** Each image is written to ``.<name>.<pid>.tmp`` in the output
  folder, flushed and fsynced, renamed into place (atomic on one file system), and only
  then recorded. A crash leaves at worst a temp file (removed by
  :meth:`ImageStore.cleanup_temp_files`) or a complete image without a row (reported by
  :meth:`ImageStore.consistency_report`): never a half-written file that looks like an
  image, never a row pointing at nothing. A file whose row cannot be written is kept, not
  deleted: the image may have cost money, and ``doctor`` can adopt it. Saving is shielded
  from cancellation so a cancelled call cannot separate the two steps.
- **One connection, one database thread.** stdlib ``sqlite3`` blocks, so every statement
  runs on one thread of the store's own, in the order it was submitted: each write is a
  single small statement, so a pool would add nothing, and bookkeeping rows can be queued
  without waiting (a later awaited statement sees them). File writes, hashing and image
  checks run in other threads, so concurrent saves overlap their slow part and queue only
  for the INSERT. WAL mode lets another process (a second server on the same folder,
  ``doctor``) read while we write.
- **Versioned schema** via ``PRAGMA user_version`` (see :mod:`.db`).
- **Several servers, one store.** Jobs are owned by leases and collected under claims
  recorded in their rows (see :mod:`.leases`), never in one process's memory.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import anyio.to_thread

from ..filenames import image_filename, new_short_id, safe_child
from ..imagefacts import (
    ACCEPTED_FORMATS_TEXT,
    HEAD_BYTES,
    ImageFacts,
    sniff_bytes,
    sniff_file,
)
from ..storage import ImageStorage
from . import files
from .claims import SubmitClaimsMixin
from .db import Database, dumps
from .leases import LeasesMixin, Owner
from .ledger import LedgerMixin
from .models import (
    SUMMARY_COLUMNS,
    ConsistencyReport,
    ImageSummary,
    NotAnImageError,
    StoredImage,
    StoreError,
    scrub_secrets,
)
from .objects import ObjectsMixin, object_name
from .partials import PartialsMixin
from .records import RecordsMixin
from .users import UsersMixin

_JPEG_HEAD = 1 << 20  # JPEG dimensions can sit after a large EXIF block
_IMAGE_COLUMNS = (
    "id, path, sha256, bytes, mime, width, height, model, prompt, parameters, source_url,"
    " url_expires_at, revised_prompt, job_id, request_id, created_at"
)
_RECORD_UPDATE = ", ".join(f"{c} = excluded.{c}" for c in (
    "path", "model", "prompt", "parameters", "source_url", "url_expires_at", "revised_prompt",
    "job_id", "request_id", "created_at", "user_id"))
_HASH_AND_CHECK_THREADS = ThreadPoolExecutor(2, thread_name_prefix="ttapi-store")
"""Threads that hash and check an image while another writes it."""


def start_hash_threads() -> None:
    """Start both threads now (blocking; see server/warmup.py): started by the first
    save, they held up the event loop for a few milliseconds."""
    both = threading.Barrier(2, timeout=10)  # each task waits for the other: two threads
    for started in [_HASH_AND_CHECK_THREADS.submit(both.wait) for _ in range(2)]:
        started.result(timeout=10)


class ImageStore(RecordsMixin, LeasesMixin, PartialsMixin, LedgerMixin, SubmitClaimsMixin,
                 UsersMixin, ObjectsMixin):
    """The output folder and its database. Use ``async with ImageStore(...)``.

    ``lease_seconds``: how long this process's claims on jobs last unless renewed
    (see :mod:`.leases`). ``database_url`` (``postgresql://...``) puts the records in
    PostgreSQL instead of the SQLite file ``database_path`` (see :mod:`.pg`); the
    partial previews still sit next to ``database_path``. ``storage`` (an S3 bucket)
    keeps the image bytes for every replica, the output folder then holding this
    server's copies (see :mod:`.objects`).
    """

    def __init__(self, output_dir: Path, database_path: Path, *,
                 lease_seconds: float = 30.0, database_url: str | None = None,
                 storage: ImageStorage | None = None) -> None:
        self.output_dir = Path(output_dir).expanduser().absolute()
        self.database_path = Path(database_path).expanduser().absolute()
        self._db = Database(self.database_path) if not database_url else _pg(database_url)
        self.owner = Owner()
        self.lease_seconds = lease_seconds
        self.storage = storage
        self._copying = {}
        self._sharing = set()

    @property
    def location(self) -> str:
        """Where the records are, for people (a PostgreSQL URL without its password)."""
        return str(getattr(self._db, "display", self.database_path))

    async def open(self) -> None:
        """Create the folders if needed and open (and migrate) the database."""

        def open_sync() -> None:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            self.output_dir = self.output_dir.resolve()
            self._db.open_sync()

        await anyio.to_thread.run_sync(open_sync)

    async def close(self) -> None:
        await self.finish_sharing()
        await self._db.close()
        for storage in (self.storage, self._partials_storage):
            if storage is not None:
                await storage.aclose()

    async def __aenter__(self) -> ImageStore:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- saving ------------------------------------------------------------------------

    async def save_image(
        self,
        data: bytes,
        *,
        model: str | None,
        prompt: str | None,
        parameters: dict[str, Any] | None,
        source_url: str | None = None,
        url_expires_at: float | None = None,
        revised_prompt: str | None = None,
        job_id: str | None = None,
        request_id: str | None = None,
        check: Callable[[bytes], object] | None = None,
    ) -> StoredImage:
        """Write ``data`` atomically into the output folder, then record it.

        ``check(data)`` (for example, is the image whole?) runs while the file is written
        and synced; when it raises, the file is never put in place and the error is raised.
        """
        facts = sniff_bytes(
            data[: _JPEG_HEAD if data[:3] == b"\xff\xd8\xff" else HEAD_BYTES], len(data)
        )
        _require_image(facts, "the data to save")
        image_id, created_at = new_short_id(), time.time()
        name = image_filename(created_at, prompt, image_id, facts.extension or "")
        final = safe_child(self.output_dir, name)
        with anyio.CancelScope(shield=True):
            # Hashing and the check (2-3 ms each for 2.4 MB) run while the write waits on
            # fsync (about 10 ms here).
            hashing = _HASH_AND_CHECK_THREADS.submit(files.sha256_bytes, data)
            checking = _HASH_AND_CHECK_THREADS.submit(check, data) if check is not None else None
            # With shared storage the object is sent (once the check passed) while the
            # local copy is written; the row waits for both.
            uploading = (asyncio.ensure_future(self._upload_checked(final, facts, data, checking))
                         if self.storage is not None else None)
            try:
                await anyio.to_thread.run_sync(
                    files.write_atomic, self.output_dir, final, data,
                    checking.result if checking is not None else None,
                )
            except BaseException:
                if uploading is not None:  # finished, its outcome read: the write's error tells
                    await asyncio.wait([uploading])
                    if not uploading.cancelled() and uploading.exception() is None:
                        await self.drop_object(final)  # no file, no row: no object either
                raise
            if uploading is not None:
                await uploading
            sha256 = await asyncio.wrap_future(hashing)
            image = _stored_image(
                image_id, created_at, final, sha256, facts, model=model, prompt=prompt,
                parameters=parameters, source_url=source_url, url_expires_at=url_expires_at,
                revised_prompt=revised_prompt, job_id=job_id, request_id=request_id,
            )
            await self._insert(image)
        return image

    async def _upload_checked(self, final: Path, facts: ImageFacts, data: bytes,
                              checking: Future[object] | None) -> None:
        if checking is not None:
            await asyncio.wrap_future(checking)  # a failed check sends nothing
        await self.put_object(final, facts.mime or "", data)

    async def adopt_file(
        self,
        tmp_path: Path,
        *,
        model: str | None,
        prompt: str | None,
        parameters: dict[str, Any] | None,
        source_url: str | None = None,
        url_expires_at: float | None = None,
        revised_prompt: str | None = None,
        job_id: str | None = None,
        request_id: str | None = None,
    ) -> StoredImage:
        """Rename a downloaded temp file of the output folder into place and record it.

        The file must sit directly in the output folder (so the rename is atomic). A temp
        file that is not an accepted image is deleted: it is ours, and worthless.
        """
        tmp = Path(tmp_path).resolve()
        if tmp.parent != self.output_dir:
            raise StoreError(f"can only adopt files directly inside {self.output_dir}, not {tmp}")
        image_id, created_at = new_short_id(), time.time()

        def name_for(facts: ImageFacts) -> str:
            return image_filename(created_at, prompt, image_id, facts.extension or "")

        with anyio.CancelScope(shield=True):
            final, sha256, facts = await anyio.to_thread.run_sync(
                files.adopt, self.output_dir, tmp, name_for
            )
            _require_image(facts, f"the downloaded file {tmp.name}")
            await self.put_object(final, facts.mime or "")
            image = _stored_image(
                image_id, created_at, final, sha256, facts, model=model, prompt=prompt,
                parameters=parameters, source_url=source_url, url_expires_at=url_expires_at,
                revised_prompt=revised_prompt, job_id=job_id, request_id=request_id,
            )
            await self._insert(image)
        return image

    async def _insert(self, im: StoredImage) -> None:
        row = (
            im.id,
            str(im.path),
            im.sha256,
            im.bytes,
            im.mime,
            im.width,
            im.height,
            im.model,
            im.prompt,
            dumps(im.parameters),
            im.source_url,
            im.url_expires_at,
            im.revised_prompt,
            im.job_id,
            im.request_id,
            im.created_at,
        )
        # An image of a job is its user's, whoever saves it (a replica taking a job over).
        owner = (im.job_id, self._owner_for_write())
        marks = ", ".join("?" * len(row))
        # ``doctor --fix`` may have recorded this very file (its name holds the id) between
        # the object's upload and this row: the save's own record then replaces it.
        sql = (f"INSERT INTO images ({_IMAGE_COLUMNS}, user_id) VALUES ({marks},"
               " COALESCE((SELECT j.user_id FROM jobs j WHERE j.job_id = ?), ?))"
               f" ON CONFLICT (id) DO UPDATE SET {_RECORD_UPDATE}"
               " WHERE images.sha256 = excluded.sha256")
        await self._db.run(lambda c: c.execute(sql, (*row, *owner)))

    # -- reading -----------------------------------------------------------------------

    async def get_image(self, image_id: str) -> StoredImage | None:
        scope, user = self._scope()
        sql = f"SELECT {_IMAGE_COLUMNS} FROM images WHERE id = ?{scope}"
        row = await self._db.run(lambda c: c.execute(sql, (image_id, *user)).fetchone())
        return StoredImage.from_row(row) if row else None

    async def local_image(self, image: StoredImage) -> StoredImage:
        """``image`` with the path of a readable file on this server (see :mod:`.objects`)."""
        if self.storage is None:
            return image
        path = await self.local_copy(image.path, image.bytes)
        return image if path == image.path else image.model_copy(update={"path": path})

    async def images_for_job(self, job_id: str) -> list[StoredImage]:
        """Images saved for a job, oldest first (so fetch_job never downloads twice)."""
        scope, user = self._scope()
        sql = (f"SELECT {_IMAGE_COLUMNS} FROM images WHERE job_id = ?{scope}"
               " ORDER BY created_at, id")
        rows = await self._db.run(lambda c: c.execute(sql, (job_id, *user)).fetchall())
        return [StoredImage.from_row(r) for r in rows]

    async def list_images(
        self, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[ImageSummary], str | None]:
        """Newest first; pass the returned cursor to get the next page (None: no more).

        Keyset pagination on (created_at, id): pages stay stable while images are added.
        """
        count = max(1, min(int(limit), 1000))
        scope, user = self._scope()
        where = f"WHERE 1 = 1{scope}"
        args: list[Any] = [*user, count + 1]
        if cursor:
            created_at, last_id = _decode_cursor(cursor)
            where += " AND (created_at < ? OR (created_at = ? AND id < ?))"
            args = [*user, created_at, created_at, last_id, count + 1]
        sql = (
            f"SELECT {SUMMARY_COLUMNS} FROM images {where} ORDER BY created_at DESC, id DESC"
            " LIMIT ?"
        )
        rows = await self._db.run(lambda c: c.execute(sql, args).fetchall())
        images = [ImageSummary.from_row(r) for r in rows[:count]]
        more = len(rows) > count and images
        return images, (_encode_cursor(images[-1]) if more else None)

    async def count_images(self) -> int:
        scope, user = self._scope()
        sql = f"SELECT COUNT(*) FROM images WHERE 1 = 1{scope}"
        row = await self._db.run(lambda c: c.execute(sql, user).fetchone())
        return int(row[0])

    # -- maintenance -------------------------------------------------------------------

    async def cleanup_temp_files(self, max_age: float = 900.0) -> list[Path]:
        """Remove leftover ``.*.tmp`` files of the output folder; returns what was removed.

        A temp file goes if its owning process is gone (POSIX) or it is older than
        ``max_age`` seconds, so a second live server on the same folder keeps its
        in-flight files. ``max_age=0`` removes them all.
        """
        return await anyio.to_thread.run_sync(files.sweep_temp_files, self.output_dir, max_age)

    async def consistency_report(self) -> ConsistencyReport:
        """Visible files of the output folder without rows, rows without files, temp files.

        With shared storage, rows are matched by name: against the objects (rows without
        objects, objects without rows) and against this server's folder (files of it
        with no row anywhere, such as an image whose object or row was never written).
        """
        # Objects first: a save puts its object before its row, so an object listed
        # here whose save finished has its row in the query that follows.
        objects = await self.object_names()
        sql = "SELECT id, path FROM images"
        rows = await self._db.run(lambda c: c.execute(sql).fetchall())

        def scan() -> ConsistencyReport:
            if objects is None:
                known = {str(r["path"]) for r in rows} | self._database_files()
                orphans, temps = files.scan_folder(self.output_dir, known)
                missing = sorted(r["id"] for r in rows if not Path(r["path"]).is_file())
                return ConsistencyReport(
                    files_without_rows=orphans, rows_without_files=missing, temp_files=temps
                )
            names = {object_name(r["path"]) for r in rows}
            known = {str(self.output_dir / n) for n in names} | self._database_files()
            orphans, temps = files.scan_folder(self.output_dir, known)
            return ConsistencyReport(
                files_without_rows=orphans, temp_files=temps,
                rows_without_files=sorted(r["id"] for r in rows
                                          if object_name(r["path"]) not in objects),
                objects_without_rows=sorted(objects - names),
            )

        return await anyio.to_thread.run_sync(scan)

    def _database_files(self) -> set[str]:
        """The database and its companions, which may sit in the output folder."""
        if self.database_path.parent.resolve() != self.output_dir.resolve():
            return set()
        name = self.database_path.name
        return {str(self.output_dir / (name + tail)) for tail in ("", "-wal", "-shm", "-journal")}

    async def record_existing_file(self, path: Path) -> StoredImage | None:
        """Record an image of the output folder that has no row; the file stays as it is.

        A crash between the rename and the INSERT leaves such a file: it may have cost
        money, so it is adopted, never deleted. The id in its name is reused when free.
        Returns None when the file already has a row (so a repair can run twice); with
        shared storage also when its bytes are recorded and stored under another name
        (a kept copy of an image saved again by a retry), and that copy is removed.
        The row belongs to the local owner: nothing in a bare file says who paid.
        Raises StoreError for a file outside the folder or one that is not an image.
        """
        file = Path(path).resolve()
        if file.parent != self.output_dir or not file.is_file():
            raise StoreError(f"can only record files directly inside {self.output_dir}: {file}")
        facts = await anyio.to_thread.run_sync(sniff_file, file)
        _require_image(facts, f"the file {file.name}")
        sha256 = await anyio.to_thread.run_sync(files.sha256_file, file)
        found = _ID_IN_NAME.search(file.name)
        wanted = found.group(1) if found else ""
        image_id = wanted if wanted and await self.get_image(wanted) is None else new_short_id()
        image = StoredImage(
            id=image_id, path=file, sha256=sha256, bytes=facts.bytes, mime=facts.mime or "",
            width=facts.width, height=facts.height, parameters={"recovered": True},
            created_at=file.stat().st_mtime,
        )
        same = " WHERE path = ?"
        if self.storage is not None:
            twins = await self._recorded_names(sha256)
            if twins:  # the same bytes are recorded: make sure they are stored, once
                if not await self.has_object(twins[0]):
                    await self.put_object(file, image.mime, name=twins[0])
                if file.name not in twins:
                    file.unlink(missing_ok=True)
                return None
            if await self.storage_size(file.name) != facts.bytes:
                await self.put_object(file, image.mime)
            same = " WHERE path = ? OR sha256 = ?"  # another replica recorded it meanwhile
        sql = (f"INSERT INTO images ({_IMAGE_COLUMNS}) SELECT {', '.join('?' * 16)}"
               f" WHERE NOT EXISTS (SELECT 1 FROM images{same})")
        row = (image_id, str(file), sha256, facts.bytes, facts.mime or "", facts.width,
               facts.height, None, None, dumps(image.parameters), None, None, None, None, None,
               image.created_at, str(file), *((sha256,) if self.storage is not None else ()))
        inserted = await self._db.run(lambda c: c.execute(sql, row).rowcount)
        return image if inserted else None

    async def record_existing_object(self, name: str) -> StoredImage | None:
        """Record an object of the shared storage that has no row (fetched into the folder
        first); None when it has one meanwhile. StoreError for an object that is no image."""
        had_copy = (self.output_dir / name).is_file()
        local = await self.local_copy(self.output_dir / name)
        sha256 = await anyio.to_thread.run_sync(files.sha256_file, local)
        try:
            recorded = await self.record_existing_file(local)
        except NotAnImageError:
            if not had_copy:  # fetched only to be recorded: not ours to keep
                local.unlink(missing_ok=True)
            raise
        if recorded is None and name not in await self._recorded_names(sha256):
            await self.drop_object(self.output_dir / name)  # recorded under another name
        return recorded

    async def _recorded_names(self, sha256: str) -> list[str]:
        """The object names of the rows holding these bytes, oldest first."""
        sql = "SELECT path FROM images WHERE sha256 = ? ORDER BY created_at"
        rows = await self._db.run(lambda c: c.execute(sql, (sha256,)).fetchall())
        return [object_name(r["path"]) for r in rows]

    async def forget_images(self, image_ids: list[str]) -> int:
        """Delete the rows of images whose files are gone; returns how many were deleted.

        Only rows whose file is still missing go (checked again here), so an image that
        reappeared meanwhile keeps its record. With shared storage, a missing object whose
        copy this server still holds is put back instead, and its row kept. The request
        log keeps the history.
        """
        gone = []
        for image_id in image_ids:
            image = await self.get_image(image_id)
            if image is None or await self.has_object(image.path):
                continue
            local = self.output_dir / object_name(image.path)
            if self.storage is not None and local.is_file() and (
                    await anyio.to_thread.run_sync(files.sha256_file, local) == image.sha256):
                await self.put_object(local, image.mime)
                continue
            gone.append(image_id)
        if not gone:
            return 0
        sql = f"DELETE FROM images WHERE id IN ({', '.join('?' * len(gone))})"
        return int(await self._db.run(lambda c: c.execute(sql, gone).rowcount))


def _pg(url: str) -> Database:
    """The PostgreSQL backend, imported only when configured (psycopg is heavy)."""
    from .pg import PgDatabase

    return PgDatabase(url)


_ID_IN_NAME = re.compile(r"_([a-z0-9]{12})\.[a-z0-9]{1,8}$")


def _require_image(facts: ImageFacts, what: str) -> None:
    if facts.format is None:
        raise NotAnImageError(
            f"{what} is not an accepted image (the bytes look like {facts.detected});"
            f" only {ACCEPTED_FORMATS_TEXT} can be stored"
        )


def _encode_cursor(image: ImageSummary) -> str:
    raw = json.dumps([image.created_at, image.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, last_id = json.loads(raw)
        return float(created_at), str(last_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise StoreError(
            f"invalid cursor {cursor[:60]!r}: pass a cursor returned by a previous listing"
        ) from exc


def _stored_image(
    image_id: str, created_at: float, path: Path, sha256: str, facts: ImageFacts, *,
    parameters: dict[str, Any] | None, **meta: Any,
) -> StoredImage:
    """The row of a file just put in place: facts from its bytes, secrets scrubbed."""
    return StoredImage(
        id=image_id, path=path, sha256=sha256, bytes=facts.bytes, mime=facts.mime or "",
        width=facts.width, height=facts.height, parameters=scrub_secrets(parameters or {}),
        created_at=created_at, **meta,
    )
