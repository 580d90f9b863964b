"""The PostgreSQL backend: the same store, on a database several hosts can share.

Chosen with ``database_url: postgresql://...`` and imported only then (psycopg is a
heavy import and most installs never need it). Why this shape:

- **Same statements, translated once.** The store's SQL is written for SQLite and kept
  portable where that costs nothing (``ON CONFLICT``, the database's clock as one
  expression); :func:`translate` rewrites the few remaining dialect spots (placeholders,
  the clock, SQLite's index hint, FTS5, ``PRAGMA data_version``) and caches the result.
  So every rule of the leases and claims lives in one place for both backends.
- **One connection on one thread, from a psycopg_pool pool of one.** The store promises
  that statements run in submission order (an unawaited bookkeeping write runs before
  whatever is awaited after it); one connection on one thread keeps that promise
  exactly as SQLite does. The pool replaces a connection that broke (a PostgreSQL
  restart, a failover), and a transaction that failed on a broken connection is run
  once more on a fresh one (no check query before each use: a round trip per
  statement would double the store's latency).
- **BEGIN IMMEDIATE becomes a transaction-scoped advisory lock**, the one write lock
  SQLite takes, so a claim that reads then writes (dedupe on start) cannot interleave
  with another process's. Single-statement claims rely on PostgreSQL's row locks:
  a conditional ``UPDATE ... WHERE the lease expired`` re-checks its condition on the
  locked row, so two processes can never both win.
- **Migrations are this module's own SQL**, index for index with SQLite's
  (:data:`PG_MIGRATIONS`), versioned in ``ttapi_schema`` under an advisory lock.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from .db import Database
from .models import StoreError

T = TypeVar("T")
log = logging.getLogger("ttapi_mcp.store")

WRITE_LOCK = 7_170_401
"""The advisory lock id that stands for SQLite's database write lock."""
MIGRATION_LOCK = 7_170_402
CONNECT_TIMEOUT_SECONDS = 10.0
CHANGE_TOKEN_SECONDS = 0.25
"""PostgreSQL has no file to stat: a waiter is told 'maybe changed' this often."""

PG_MIGRATIONS: list[str] = [
    """
    CREATE TABLE images (
        id TEXT PRIMARY KEY, path TEXT NOT NULL, sha256 TEXT NOT NULL, bytes BIGINT NOT NULL,
        mime TEXT NOT NULL, width BIGINT, height BIGINT, model TEXT, prompt TEXT,
        parameters TEXT, source_url TEXT, url_expires_at DOUBLE PRECISION,
        revised_prompt TEXT, job_id TEXT, request_id TEXT,
        created_at DOUBLE PRECISION NOT NULL);
    CREATE INDEX images_created ON images(created_at, id);
    CREATE INDEX images_job ON images(job_id);
    CREATE TABLE requests (
        id TEXT PRIMARY KEY, tool TEXT NOT NULL, route TEXT, parameters TEXT,
        status TEXT NOT NULL, usage TEXT, quota TEXT, duration_s DOUBLE PRECISION, error TEXT,
        created_at DOUBLE PRECISION NOT NULL, finished_at DOUBLE PRECISION);
    CREATE TABLE jobs (
        job_id TEXT PRIMARY KEY, kind TEXT NOT NULL, prompt TEXT, status TEXT NOT NULL,
        message TEXT, upstream TEXT, image_ids TEXT NOT NULL DEFAULT '[]', request_args TEXT,
        created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
        finished_at DOUBLE PRECISION);
    CREATE INDEX jobs_created ON jobs(created_at, job_id);
    """,
    """
    ALTER TABLE jobs ADD COLUMN owner_id TEXT;
    ALTER TABLE jobs ADD COLUMN owner_host TEXT;
    ALTER TABLE jobs ADD COLUMN owner_pid BIGINT;
    ALTER TABLE jobs ADD COLUMN lease_until DOUBLE PRECISION;
    ALTER TABLE jobs ADD COLUMN phase TEXT;
    ALTER TABLE jobs ADD COLUMN collector_id TEXT;
    ALTER TABLE jobs ADD COLUMN collector_until DOUBLE PRECISION;
    ALTER TABLE jobs ADD COLUMN dedupe_key TEXT;
    UPDATE jobs SET dedupe_key = request_args::jsonb ->> 'dedupe_key'
        WHERE request_args IS NOT NULL AND request_args LIKE '{%';
    CREATE INDEX jobs_dedupe ON jobs(dedupe_key, status);
    CREATE INDEX jobs_open ON jobs(lease_until)
        WHERE finished_at IS NULL OR (status = 'SUCCESS' AND image_ids = '[]');
    """,
    # Gallery search: a full-text index over the same words FTS5 indexes in SQLite, and a
    # function that reads the FTS5 prefix query the gallery builds ('"fox"* "red"*').
    """
    CREATE INDEX images_words ON images USING GIN (to_tsvector('simple',
        coalesce(prompt, '') || ' ' || coalesce(revised_prompt, '')));
    CREATE FUNCTION ttapi_prefix_query(q TEXT) RETURNS tsquery LANGUAGE SQL IMMUTABLE AS $$
        SELECT to_tsquery('simple', array_to_string(ARRAY(
            SELECT quote_literal(m[1]) || ':*'
            FROM regexp_matches(q, '"([^"]+)"', 'g') AS m), ' & '))
    $$;
    CREATE INDEX images_model_created ON images(model, created_at, id);
    """,
    """
    CREATE TABLE IF NOT EXISTS partial_images (
        partial_id TEXT PRIMARY KEY, job_id TEXT NOT NULL, image_index BIGINT NOT NULL,
        partial_index BIGINT NOT NULL, path TEXT NOT NULL, mime TEXT NOT NULL,
        bytes BIGINT NOT NULL, created_at DOUBLE PRECISION NOT NULL);
    CREATE INDEX IF NOT EXISTS partial_images_job ON partial_images(job_id);
    """,
    """
    CREATE TABLE IF NOT EXISTS ledger (
        id TEXT PRIMARY KEY, created_at DOUBLE PRECISION NOT NULL, tool TEXT NOT NULL,
        model TEXT, route TEXT, images BIGINT, estimate_quota DOUBLE PRECISION NOT NULL,
        held_quota DOUBLE PRECISION NOT NULL, state TEXT NOT NULL,
        reported_quota DOUBLE PRECISION, usage TEXT, outcome TEXT, maybe_billed BIGINT,
        job_id TEXT, basis TEXT, finished_at DOUBLE PRECISION);
    CREATE INDEX IF NOT EXISTS ledger_created ON ledger(created_at);
    CREATE INDEX IF NOT EXISTS ledger_job ON ledger(job_id);
    """,
    """
    CREATE TABLE IF NOT EXISTS submit_claims (
        dedupe_key TEXT PRIMARY KEY, token TEXT NOT NULL, owner_id TEXT,
        lease_until DOUBLE PRECISION NOT NULL, created_at DOUBLE PRECISION NOT NULL);
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

_SQLITE_NOW = "((julianday('now') - 2440587.5) * 86400.0)"
_PG_NOW = "(extract(epoch from clock_timestamp())::double precision)"
_REWRITES: list[tuple[str, str]] = [
    (_SQLITE_NOW, _PG_NOW),
    ("i.rowid IN (SELECT rowid FROM images_fts WHERE images_fts MATCH ?)",
     "to_tsvector('simple', coalesce(i.prompt, '') || ' ' || coalesce(i.revised_prompt, ''))"
     " @@ ttapi_prefix_query(?)"),
    ("BEGIN IMMEDIATE", f"SELECT pg_advisory_xact_lock({WRITE_LOCK})"),  # the ledger's
    ("PRAGMA data_version", "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint"),
]
_INDEX_HINT = re.compile(r"\s+INDEXED BY \w+")


@functools.lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """A statement of the store (SQLite dialect) in PostgreSQL's."""
    for sqlite_form, pg_form in _REWRITES:
        sql = sql.replace(sqlite_form, pg_form)
    sql = _INDEX_HINT.sub("", sql)
    return sql.replace("%", "%%").replace("?", "%s")


class PgRow(tuple):
    """A row read by position or by column name, like ``sqlite3.Row``."""

    _names: tuple[str, ...] = ()

    def keys(self) -> tuple[str, ...]:
        return self._names

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names.index(key))
        return tuple.__getitem__(self, key)


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], PgRow]:
    names = tuple(d.name for d in cursor.description or ())
    cls = type("Row", (PgRow,), {"_names": names})
    return lambda values: cls(values)


class PgConnection:
    """What the store's statement functions are given: ``execute`` in SQLite's dialect."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def close(self) -> None:
        """The pool owns the real connection (see :meth:`PgDatabase.close`)."""

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        cursor = self._conn.cursor(row_factory=_row_factory)
        cursor.execute(translate(sql), tuple(args))
        return cursor

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        cursor = self._conn.cursor(row_factory=_row_factory)
        cursor.executemany(translate(sql), [tuple(r) for r in rows])
        return cursor


def redact_url(url: str) -> str:
    """The URL as messages and logs show it: scheme, user, host, port and database only.

    Built up from its parts, never by removing the password from the text, so a password
    in the query (``?password=``), one with an unencoded ``/`` or a malformed URL cannot
    slip through."""
    try:
        parts = urlsplit(url)
        host, port, user = parts.hostname or "", parts.port, parts.username
    except ValueError:
        return "postgresql://(a malformed URL)"
    if "@" not in parts.netloc or "/" in parts.netloc.rsplit("@", 1)[0]:
        user = None  # the part before '@' may hold a password: show none of it
    secret = ":***" if parts.password is not None or "password" in parts.query.lower() else ""
    netloc = (f"{user}{secret}@" if user else "") + host + (f":{port}" if port else "")
    path = parts.path if "@" not in parts.path and ":" not in parts.path else "/…"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


class PgDatabase(Database):
    """The store's database on PostgreSQL; the same ``run``/``submit`` as SQLite's."""

    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        super().__init__(path=None)  # type: ignore[arg-type]
        self.url = url
        self.display = redact_url(url)
        self._pool: Any = None

    def open_sync(self, migrations: list[str] | None = None) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        pool = ConnectionPool(
            self.url, min_size=1, max_size=1, open=False,
            kwargs={"connect_timeout": int(CONNECT_TIMEOUT_SECONDS)}, name="ttapi-store",
        )
        try:
            # Migrate on a connection of its own first: a refused or misconfigured server
            # fails here at once with its own reason, not after the pool's timeout.
            with psycopg.connect(self.url, connect_timeout=int(CONNECT_TIMEOUT_SECONDS)) as conn:
                self._migrate_pg(conn, PG_MIGRATIONS if migrations is None else migrations)
            pool.open(wait=True, timeout=CONNECT_TIMEOUT_SECONDS)
        except (psycopg.Error, Exception) as exc:
            pool.close()
            if isinstance(exc, StoreError):
                raise
            # A URL libpq cannot parse is quoted back in its message: say so without it.
            reason = ("database_url is not a valid PostgreSQL URL"
                      if isinstance(exc, psycopg.ProgrammingError) else _first_line(exc))
            raise StoreError(
                f"cannot open the PostgreSQL database {self.display}: {reason};"
                " check database_url (host, port, user, database) and that the server runs"
            ) from None
        self._pool = pool
        self._conn = PgConnection(None)  # marks the database open (see Database._submit)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="ttapi-db")

    def _migrate_pg(self, conn: Any, migrations: list[str]) -> None:
        """All pending steps in one transaction under a lock: two replicas starting at
        once on an old database upgrade it once (PostgreSQL's DDL is transactional)."""
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS ttapi_schema (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM ttapi_schema").fetchone()
            if row is None:
                conn.execute("INSERT INTO ttapi_schema VALUES (0)")
            version = int(row[0]) if row else 0
            if version > len(PG_MIGRATIONS):
                raise StoreError(
                    f"database {self.display} has schema version {version}, newer than this"
                    f" release understands ({len(PG_MIGRATIONS)}); upgrade ttapi-mcp"
                )
            for step in range(version, len(migrations)):
                conn.execute(migrations[step])
                conn.execute("UPDATE ttapi_schema SET version = %s", (step + 1,))

    async def close(self) -> None:
        await super().close()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def _transaction(self, conn: Any, fn: Callable[[Any], T], immediate: bool) -> T:
        import psycopg

        for attempt in (1, 2):
            raw = None
            committing = False
            try:
                with self._pool.connection() as raw, raw.transaction():
                    if immediate:
                        raw.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                    result = fn(PgConnection(raw))
                    committing = True
                return result
            except psycopg.OperationalError as exc:
                # The connection broke (server restart): the pool replaces it; the
                # transaction was rolled back, so running it again is safe; unless it
                # broke during the COMMIT, whose outcome is unknown: never run twice.
                if (attempt == 2 or committing or raw is None
                        or not (raw.closed or raw.broken)):
                    raise
                log.warning("database connection lost (%s); retrying once", _first_line(exc))
        raise AssertionError("unreachable")

    def change_token(self) -> tuple[int, int]:
        return (int(time.monotonic() / CHANGE_TOKEN_SECONDS), 0)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
