"""The SQLite connection: schema migrations, and running statements off the event loop."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import anyio

from .models import StoreError

T = TypeVar("T")
log = logging.getLogger("ttapi_mcp.store")

# Applied in order; PRAGMA user_version records how many ran. Append, never edit.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE images (
        id TEXT PRIMARY KEY, path TEXT NOT NULL, sha256 TEXT NOT NULL, bytes INTEGER NOT NULL,
        mime TEXT NOT NULL, width INTEGER, height INTEGER, model TEXT, prompt TEXT,
        parameters TEXT, source_url TEXT, url_expires_at REAL, revised_prompt TEXT,
        job_id TEXT, request_id TEXT, created_at REAL NOT NULL);
    CREATE INDEX images_created ON images(created_at, id);
    CREATE INDEX images_job ON images(job_id);
    CREATE TABLE requests (
        id TEXT PRIMARY KEY, tool TEXT NOT NULL, route TEXT, parameters TEXT,
        status TEXT NOT NULL, usage TEXT, quota TEXT, duration_s REAL, error TEXT,
        created_at REAL NOT NULL, finished_at REAL);
    CREATE TABLE jobs (
        job_id TEXT PRIMARY KEY, kind TEXT NOT NULL, prompt TEXT, status TEXT NOT NULL,
        message TEXT, upstream TEXT, image_ids TEXT NOT NULL DEFAULT '[]', request_args TEXT,
        created_at REAL NOT NULL, updated_at REAL NOT NULL, finished_at REAL);
    CREATE INDEX jobs_created ON jobs(created_at, job_id);
    """,
    # Several servers on one store: who owns a job (until when), what it is doing, who
    # collects an upstream job's result, and the dedupe key as an indexed column.
    """
    ALTER TABLE jobs ADD COLUMN owner_id TEXT;
    ALTER TABLE jobs ADD COLUMN owner_host TEXT;
    ALTER TABLE jobs ADD COLUMN owner_pid INTEGER;
    ALTER TABLE jobs ADD COLUMN lease_until REAL;
    ALTER TABLE jobs ADD COLUMN phase TEXT;
    ALTER TABLE jobs ADD COLUMN collector_id TEXT;
    ALTER TABLE jobs ADD COLUMN collector_until REAL;
    ALTER TABLE jobs ADD COLUMN dedupe_key TEXT;
    UPDATE jobs SET dedupe_key = json_extract(request_args, '$.dedupe_key')
        WHERE request_args IS NOT NULL AND json_valid(request_args);
    CREATE INDEX jobs_dedupe ON jobs(dedupe_key, status);
    CREATE INDEX jobs_open ON jobs(lease_until)
        WHERE finished_at IS NULL OR (status = 'SUCCESS' AND image_ids = '[]');
    """,
    # Gallery: prompt search (FTS5 over the images' own rows) and model-filtered pages.
    """
    CREATE VIRTUAL TABLE images_fts USING fts5(
        prompt, revised_prompt, content='images', content_rowid='rowid');
    CREATE TRIGGER images_fts_insert AFTER INSERT ON images BEGIN
        INSERT INTO images_fts(rowid, prompt, revised_prompt)
        VALUES (new.rowid, new.prompt, new.revised_prompt);
    END;
    CREATE TRIGGER images_fts_delete AFTER DELETE ON images BEGIN
        INSERT INTO images_fts(images_fts, rowid, prompt, revised_prompt)
        VALUES ('delete', old.rowid, old.prompt, old.revised_prompt);
    END;
    CREATE TRIGGER images_fts_update AFTER UPDATE OF prompt, revised_prompt ON images BEGIN
        INSERT INTO images_fts(images_fts, rowid, prompt, revised_prompt)
        VALUES ('delete', old.rowid, old.prompt, old.revised_prompt);
        INSERT INTO images_fts(rowid, prompt, revised_prompt)
        VALUES (new.rowid, new.prompt, new.revised_prompt);
    END;
    INSERT INTO images_fts(images_fts) VALUES ('rebuild');
    CREATE INDEX images_model_created ON images(model, created_at, id);
    """,
    # Partial images of streamed calls (§11.4): preview files of a job, not results.
    """
    CREATE TABLE IF NOT EXISTS partial_images (
        partial_id TEXT PRIMARY KEY, job_id TEXT NOT NULL, image_index INTEGER NOT NULL,
        partial_index INTEGER NOT NULL, path TEXT NOT NULL, mime TEXT NOT NULL,
        bytes INTEGER NOT NULL, created_at REAL NOT NULL);
    CREATE INDEX IF NOT EXISTS partial_images_job ON partial_images(job_id);
    """,
    # The spend ledger (service/money.py): one row per paid call, reserved before sending.
    """
    CREATE TABLE IF NOT EXISTS ledger (
        id TEXT PRIMARY KEY, created_at REAL NOT NULL, tool TEXT NOT NULL, model TEXT,
        route TEXT, images INTEGER, estimate_quota REAL NOT NULL, held_quota REAL NOT NULL,
        state TEXT NOT NULL, reported_quota REAL, usage TEXT, outcome TEXT,
        maybe_billed INTEGER, job_id TEXT, basis TEXT, finished_at REAL);
    CREATE INDEX IF NOT EXISTS ledger_created ON ledger(created_at);
    CREATE INDEX IF NOT EXISTS ledger_job ON ledger(job_id);
    """,
    """
    CREATE TABLE IF NOT EXISTS submit_claims (
        dedupe_key TEXT PRIMARY KEY, token TEXT NOT NULL, owner_id TEXT,
        lease_until REAL NOT NULL, created_at REAL NOT NULL);
    """,
    # Per-user isolation: whose image, job and request each row is (the access token's
    # subject; 'local' in stdio and static-token modes, and for every older row).
    """
    ALTER TABLE images ADD COLUMN user_id TEXT NOT NULL DEFAULT 'local';
    ALTER TABLE jobs ADD COLUMN user_id TEXT NOT NULL DEFAULT 'local';
    ALTER TABLE requests ADD COLUMN user_id TEXT NOT NULL DEFAULT 'local';
    CREATE INDEX images_user_created ON images(user_id, created_at, id);
    CREATE INDEX jobs_user_created ON jobs(user_id, created_at, job_id);
    ALTER TABLE ledger ADD COLUMN user_id TEXT NOT NULL DEFAULT 'local';
    """,
    # Budgets per user (budget_per_user_day/month): one user's held quota in a period.
    """
    CREATE INDEX IF NOT EXISTS ledger_user_created ON ledger(user_id, created_at);
    """,
]
BUSY_TIMEOUT_SECONDS = 10.0
"""SQLite's own wait for a lock held by another process, per statement."""
BUSY_RETRY_SECONDS = 60.0
"""How long a statement is retried while another process holds the write lock (on top
of SQLite's own busy timeout): a caller never sees 'database is locked'."""


def dumps(value: Any) -> str | None:
    """JSON for a column; None stays NULL."""
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


class Database:
    """One connection, used only by one thread of its own, in submission order.

    Each statement is tiny, so a single connection is simpler than a pool and cannot
    deadlock with itself. One thread that runs the statements in the order they were
    submitted also lets bookkeeping writes go without being awaited (:meth:`submit`):
    whatever is awaited after them runs after them.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: Any = None
        self._thread: ThreadPoolExecutor | None = None

    def open_sync(self, migrations: list[str] | None = None) -> None:
        """Open, switch to WAL and apply the migrations (all of them unless given)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_SECONDS)
        try:
            conn.row_factory = sqlite3.Row
            _retry_busy(lambda: conn.execute("PRAGMA journal_mode=WAL"))
            conn.execute("PRAGMA synchronous=FULL")
            _retry_busy(lambda: self._migrate(conn, MIGRATIONS if migrations is None
                                              else migrations))
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="ttapi-db")

    def _migrate(self, conn: sqlite3.Connection, migrations: list[str]) -> None:
        """Each step in one ``BEGIN IMMEDIATE`` transaction that re-reads the version, so
        two servers starting at once on an old database upgrade it once."""
        previous = conn.isolation_level
        conn.isolation_level = None  # explicit transactions only, while migrating
        try:
            while True:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
                    if version > len(MIGRATIONS):
                        raise StoreError(
                            f"database {self.path} has schema version {version}, newer than "
                            f"this release understands ({len(MIGRATIONS)}); upgrade ttapi-mcp "
                            "or use another database_path"
                        )
                    if version >= len(migrations):
                        conn.execute("COMMIT")
                        return
                    for statement in _statements(migrations[version]):
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version={version + 1}")
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
        finally:
            conn.isolation_level = previous

    async def close(self) -> None:
        """Close after every statement already submitted has run."""
        conn, self._conn = self._conn, None
        thread, self._thread = self._thread, None
        if conn is not None and thread is not None:
            await _wait_shielded(thread.submit(conn.close))
            thread.shutdown(wait=False)

    async def run(self, fn: Callable[[sqlite3.Connection], T], *, immediate: bool = False) -> T:
        """``fn(conn)`` in one transaction on the database thread; its result.

        A queued statement always runs, even when its caller is cancelled; a caller
        cancelled through anyio still waits for it, so it is never half-known whether it ran.
        ``immediate`` takes the write lock first (``BEGIN IMMEDIATE``): for a claim that
        reads, then writes what it read, with no other process writing in between.
        """
        return await _wait_shielded(self._submit(fn, immediate))

    def submit(self, fn: Callable[[sqlite3.Connection], object]) -> None:
        """Queue ``fn(conn)`` without waiting; a failure is logged, not raised.

        For records that the caller must not wait for (a request row while the request
        is sent); a later :meth:`run` runs after it and sees its effect.
        """
        self._submit(fn).add_done_callback(_log_failure)

    def _submit(self, fn: Callable[[sqlite3.Connection], T], immediate: bool = False) -> Future[T]:
        conn, thread = self._conn, self._thread
        if conn is None or thread is None:
            raise RuntimeError("the image store is not open (never opened, or closed): use "
                               "'async with ImageStore(...)'")

        return thread.submit(self._transaction, conn, fn, immediate)

    def _transaction(self, conn: Any, fn: Callable[[Any], T], immediate: bool) -> T:
        """``fn(conn)`` in one transaction, run again while another process holds the lock."""

        def transaction() -> T:
            with conn:
                if immediate:
                    conn.execute("BEGIN IMMEDIATE")
                return fn(conn)

        return _retry_busy(transaction)

    def change_token(self) -> tuple[int, int]:
        """A value that changes when any process commits (the WAL file's size and
        modification time): one ``stat``, no query, so a waiter can look often."""
        try:
            info = os.stat(f"{self.path}-wal")
        except OSError:
            return (0, 0)
        return (info.st_size, info.st_mtime_ns)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _retry_busy(fn: Callable[[], T]) -> T:
    """``fn()``, run again while another process holds the lock, for up to
    :data:`BUSY_RETRY_SECONDS`.

    SQLite's busy timeout already waits for a lock, but not in every case (a read
    transaction that wants to write after another process wrote gets SQLITE_BUSY at once).
    ``fn`` is a whole transaction, rolled back on failure, so running it again is safe.
    """
    deadline = time.monotonic() + BUSY_RETRY_SECONDS
    delay = 0.005
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() + delay > deadline:
                raise
            log.debug("database busy, retrying in %.3f s", delay)
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.2)


def _statements(script: str) -> list[str]:
    """A migration script split into its statements (for ``execute``, which takes one)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements


async def _wait_shielded(future: Future[T]) -> T:
    """Await a database-thread future without ever cancelling it.

    ``asyncio.wrap_future`` cancels the thread's future when the awaiting task is
    cancelled, which would drop a statement still in the queue; ``asyncio.shield`` keeps
    it (a plain ``task.cancel()``, as at interpreter shutdown), the anyio shield makes an
    anyio-cancelled caller wait for the result. Needs the asyncio backend, as the server.
    """
    with anyio.CancelScope(shield=True):
        result = await asyncio.shield(asyncio.wrap_future(future))
    return result


def _log_failure(future: Future[object]) -> None:
    error = None if future.cancelled() else future.exception()
    if error is not None:
        log.error("a queued store write failed", exc_info=error)
