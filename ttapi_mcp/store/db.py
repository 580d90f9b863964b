"""The SQLite connection: schema migrations, and running statements off the event loop."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread

from .models import StoreError

T = TypeVar("T")

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
]


def dumps(value: Any) -> str | None:
    """JSON for a column; None stays NULL."""
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


class Database:
    """One connection shared by worker threads, serialised by a lock.

    Each statement is tiny, so a single connection is simpler than a pool and cannot
    deadlock with itself; the lock is held only while SQLite runs, never during file I/O.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=10.0)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > len(MIGRATIONS):
            raise StoreError(
                f"database {self.path} has schema version {version}, newer than this release"
                f" understands ({len(MIGRATIONS)}); upgrade ttapi-mcp or use another database_path"
            )
        for step in range(version, len(MIGRATIONS)):
            conn.executescript(f"BEGIN; {MIGRATIONS[step]} PRAGMA user_version={step + 1}; COMMIT;")

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await anyio.to_thread.run_sync(conn.close)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in a worker thread, in one transaction, under the lock."""
        conn = self._conn
        if conn is None:
            raise RuntimeError("the image store is not open: use 'async with ImageStore(...)'")

        def locked() -> T:
            with self._lock, conn:
                return fn(conn)

        return await anyio.to_thread.run_sync(locked)
