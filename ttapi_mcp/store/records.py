"""Requests and jobs: the bookkeeping half of the store (no files involved)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from ..filenames import new_short_id
from .db import Database, dumps
from .models import JobRecord, StoreError, scrub_secrets

_JOB_BY_ID = "SELECT * FROM jobs WHERE job_id = ?"

REQUEST_STATUSES = ("ok", "error", "partial", "pending")
TERMINAL_JOB_STATUSES = frozenset({"SUCCESS", "FAILED", "succeeded", "failed", "interrupted"})
_JOB_FIELDS = (
    "kind",
    "prompt",
    "status",
    "message",
    "upstream",
    "image_ids",
    "request_args",
    "finished_at",
)
_JSON_JOB_FIELDS = frozenset({"upstream", "image_ids", "request_args"})


class RecordsMixin:
    """Request log and job table; mixed into :class:`ImageStore`, which owns ``_db``."""

    _db: Database
    _owner_for_write: Callable[[], str]
    _scope: Callable[..., tuple[str, list[Any]]]
    current_user: Callable[[], str | None]

    async def start_request(
        self, tool: str, route: str | None, parameters: dict[str, Any], *, wait: bool = False
    ) -> str:
        """Record a request as pending; keys that name credentials are dropped.

        By default queued, not awaited, so the request is sent while the row is written:
        for generate and edit calls, the job row written and awaited before is what says a
        paid call may have started. ``wait=True`` (when no such row exists yet) returns
        once the row is written, and raises if it cannot be.
        """
        request_id = new_short_id()
        row = (request_id, tool, route, dumps(scrub_secrets(parameters)), "pending", time.time(),
               self._owner_for_write())
        sql = (
            "INSERT INTO requests (id, tool, route, parameters, status, created_at, user_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        if wait:
            await self._db.run(lambda c: c.execute(sql, row))
        else:
            self._db.submit(lambda c: c.execute(sql, row))
        return request_id

    async def finish_request(
        self,
        request_id: str,
        status: str,
        usage: dict[str, Any] | None = None,
        quota: str | float | None = None,
        error: str | None = None,
    ) -> None:
        """Record how a request ended. Queued, not awaited, like :meth:`start_request`;
        the job's own row, updated after it, is awaited."""
        if status not in REQUEST_STATUSES:
            raise StoreError(f"unknown request status {status!r}; use one of {REQUEST_STATUSES}")
        now = time.time()
        quota_text = None if quota is None else str(quota)
        args = (status, dumps(usage), quota_text, error, now, now, request_id)
        sql = (
            "UPDATE requests SET status = ?, usage = ?, quota = ?, error = ?, finished_at = ?,"
            " duration_s = ? - created_at WHERE id = ?"
        )
        self._db.submit(lambda c: c.execute(sql, args))

    async def get_request(self, request_id: str) -> dict[str, Any] | None:
        sql = "SELECT * FROM requests WHERE id = ?"
        row = await self._db.run(lambda c: c.execute(sql, (request_id,)).fetchone())
        if row is None:
            return None
        record = dict(row)
        for key in ("parameters", "usage"):
            record[key] = json.loads(record[key]) if record[key] else None
        return record

    async def upsert_job(
        self,
        job_id: str,
        kind: str,
        prompt: str | None,
        status: str,
        *,
        message: str | None = None,
        upstream: dict[str, Any] | None = None,
        image_ids: list[str] | None = None,
        request_args: dict[str, Any] | None = None,
    ) -> JobRecord:
        """Create a job, or update a known one; arguments passed as None keep their value.

        Called at submit time, before the tool returns, so a job id is never lost.
        """
        now = time.time()
        finished = now if status in TERMINAL_JOB_STATUSES else None
        args = scrub_secrets(request_args) if request_args is not None else None
        row = (
            job_id,
            kind,
            prompt,
            status,
            message,
            dumps(upstream),
            dumps(image_ids or []),
            dumps(args),
            now,
            now,
            finished,
            self._owner_for_write(),
            dumps(image_ids),
        )
        sql = (
            "INSERT INTO jobs (job_id, kind, prompt, status, message, upstream, image_ids,"
            " request_args, created_at, updated_at, finished_at, user_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(job_id) DO UPDATE SET status = excluded.status,"
            " prompt = COALESCE(excluded.prompt, jobs.prompt),"
            " message = COALESCE(excluded.message, jobs.message),"
            " upstream = COALESCE(excluded.upstream, jobs.upstream),"
            " image_ids = COALESCE(?, jobs.image_ids),"
            " request_args = COALESCE(excluded.request_args, jobs.request_args),"
            " updated_at = excluded.updated_at,"
            " finished_at = COALESCE(jobs.finished_at, excluded.finished_at)"
        )
        return await self._write_job(job_id, lambda c: c.execute(sql, row).rowcount)

    async def get_job(self, job_id: str) -> JobRecord | None:
        scope, user = self._scope()
        sql = f"{_JOB_BY_ID}{scope}"
        row = await self._db.run(lambda c: c.execute(sql, (job_id, *user)).fetchone())
        return JobRecord.from_row(row) if row else None

    async def held_by_another_user(self, job_id: str) -> bool:
        """Whether a job id is another user's: to be answered 'not found' as if unknown,
        without asking TTAPI about it (which would fetch and save that user's image)."""
        user = self.current_user()
        if user is None:
            return False
        sql = "SELECT 1 FROM jobs WHERE job_id = ? AND user_id != ?"
        return await self._db.run(lambda c: c.execute(sql, (job_id, user)).fetchone()) is not None

    async def list_jobs(self, limit: int = 50) -> list[JobRecord]:
        """Newest first."""
        scope, user = self._scope()
        sql = f"SELECT * FROM jobs WHERE 1 = 1{scope} ORDER BY created_at DESC, job_id DESC LIMIT ?"
        count = max(1, min(int(limit), 1000))
        rows = await self._db.run(lambda c: c.execute(sql, (*user, count)).fetchall())
        return [JobRecord.from_row(r) for r in rows]

    async def update_job(self, job_id: str, **fields: Any) -> JobRecord:
        """Set some of: kind, prompt, status, message, upstream, image_ids, request_args,
        finished_at. A terminal status sets finished_at when it is still unset."""
        unknown = sorted(set(fields) - set(_JOB_FIELDS))
        if unknown:
            raise StoreError(f"unknown job fields {unknown}; allowed: {list(_JOB_FIELDS)}")
        if "request_args" in fields and fields["request_args"] is not None:
            fields["request_args"] = scrub_secrets(fields["request_args"])
        now = time.time()
        sets = [f"{key} = ?" for key in fields] + ["updated_at = ?"]
        args = [dumps(v) if k in _JSON_JOB_FIELDS else v for k, v in fields.items()] + [now]
        if fields.get("status") in TERMINAL_JOB_STATUSES and "finished_at" not in fields:
            sets.append("finished_at = COALESCE(finished_at, ?)")
            args.append(now)
        sql = f"UPDATE jobs SET {', '.join(sets)} WHERE job_id = ?"
        return await self._write_job(job_id, lambda c: c.execute(sql, [*args, job_id]).rowcount)

    async def _write_job(
        self, job_id: str, write: Callable[[sqlite3.Connection], int]
    ) -> JobRecord:
        """Run ``write`` (returning the rows changed) and read the job back, in one
        transaction and one trip to the database thread."""

        def write_and_read(conn: sqlite3.Connection) -> sqlite3.Row | None:
            if not write(conn):
                return None
            row: sqlite3.Row | None = conn.execute(_JOB_BY_ID, (job_id,)).fetchone()
            return row

        row = await self._db.run(write_and_read)
        if row is None:
            raise KeyError(f"no job {job_id!r} is recorded")
        return JobRecord.from_row(row)
