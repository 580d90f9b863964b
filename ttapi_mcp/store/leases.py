"""Jobs shared by several servers on one store: ownership leases and collector claims.

Every server process is a peer. A job row names its owner (an instance id unique to one
process start, plus host and pid for people) and a lease deadline the owner renews
while it lives; an upstream job (a TTAPI job that finishes on its own, e.g. GPT-4o) also
names its collector, the one process that polls TTAPI and downloads its result, with a
lease of its own. Whatever a process knows in memory is only a cache of these rows.

Why this shape:

- **Claims are single conditional statements** (``UPDATE ... WHERE the lease expired``,
  checking the row count), or a ``BEGIN IMMEDIATE`` transaction where a claim must read
  first, so two processes can never both win.
- **Time is the database's clock** (``julianday('now')`` in SQL, never the caller's), so a
  PostgreSQL backend can use ``now()`` with the same statements. For SQLite that clock is
  the one host's: WAL needs shared memory, so every process on one SQLite store runs on
  the same machine and there is no skew to allow for. :data:`CLOCK_MARGIN_SECONDS` is
  added to every expiry test all the same (it is what a multi-host backend must widen).
- **The operations are named in the service's words** (start a job or attach to an
  identical one, renew, claim a collector, list expired jobs), so another backend
  implements the same methods with its own SQL.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..filenames import new_short_id
from .db import Database, dumps
from .models import JobRecord, scrub_secrets

NOW = "((julianday('now') - 2440587.5) * 86400.0)"
"""The database's clock in epoch seconds (millisecond resolution)."""
CLOCK_MARGIN_SECONDS = 0.0
"""Added to a lease before it counts as expired. Zero for SQLite (one host, one clock)."""
OPEN = "(finished_at IS NULL OR (status = 'SUCCESS' AND image_ids = '[]'))"
"""A job still to be finished: running, or done upstream with its image not yet saved
(the same expression as the partial index ``jobs_open``, so queries can use it)."""
_EXPIRED = f"(lease_until IS NULL OR lease_until + {CLOCK_MARGIN_SECONDS} < {NOW})"
_COLLECTOR_FREE = f"(collector_until IS NULL OR collector_until + {CLOCK_MARGIN_SECONDS} < {NOW})"
_INSERT_COLUMNS = (
    "job_id, kind, prompt, status, request_args, image_ids, created_at, updated_at,"
    " owner_id, owner_host, owner_pid, lease_until, phase, dedupe_key, user_id"
)


@dataclass(frozen=True)
class Owner:
    """This process start, as the rows name it."""

    instance_id: str = field(default_factory=lambda: "srv-" + new_short_id())
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)


class LeasesMixin:
    """Ownership and collection of jobs across processes; mixed into :class:`ImageStore`."""

    _db: Database
    database_path: Path
    owner: Owner
    lease_seconds: float
    _owner_for_write: Callable[[], str]
    _scope: Callable[..., tuple[str, list[Any]]]

    async def start_job(
        self,
        job_id: str,
        kind: str,
        prompt: str | None,
        status: str,
        *,
        request_args: dict[str, Any] | None = None,
        dedupe_key: str | None = None,
        phase: str | None = None,
    ) -> tuple[JobRecord, bool]:
        """Record a new job owned by this process, or attach to an identical one.

        With ``dedupe_key``, a running job of another live process with that key is
        returned instead (and nothing is recorded): ``(its record, False)``. Otherwise
        ``(the new record, True)``. Checked and written in one ``BEGIN IMMEDIATE``
        transaction, so two processes making the same call at once start one job.
        """
        now = time.time()
        args = dumps(scrub_secrets(request_args)) if request_args is not None else None
        me = self.owner
        row = (job_id, kind, prompt, status, args, "[]", now, now, me.instance_id, me.host,
               me.pid, self.lease_seconds, phase, dedupe_key, self._owner_for_write())
        insert = (
            f"INSERT INTO jobs ({_INSERT_COLUMNS})"
            f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {NOW} + ?, ?, ?, ?)"
            " ON CONFLICT(job_id) DO UPDATE SET owner_id = excluded.owner_id,"
            " owner_host = excluded.owner_host, owner_pid = excluded.owner_pid,"
            " lease_until = excluded.lease_until, status = excluded.status,"
            " request_args = COALESCE(excluded.request_args, jobs.request_args),"
            " updated_at = excluded.updated_at"
        )
        # Never attach one user's call to another user's job.
        scope, user = self._scope()
        running = (
            "SELECT * FROM jobs WHERE dedupe_key = ? AND status = 'running' AND owner_id != ?"
            f" AND NOT {_EXPIRED}{scope} ORDER BY created_at LIMIT 1"
        )

        def claim(conn: sqlite3.Connection) -> tuple[sqlite3.Row, bool]:
            if dedupe_key is not None:
                found = conn.execute(running, (dedupe_key, me.instance_id, *user)).fetchone()
                if found is not None:
                    return found, False
            conn.execute(insert, row)
            return conn.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone(), True

        found, created = await self._db.run(claim, immediate=dedupe_key is not None)
        return JobRecord.from_row(found), created

    async def renew_leases(self, collecting: list[str]) -> None:
        """Extend this process's lease on every open job it owns, and its collector
        claim on the jobs it still collects (``collecting``)."""
        me, lease = self.owner.instance_id, self.lease_seconds
        owned = f"UPDATE jobs SET lease_until = {NOW} + ? WHERE owner_id = ? AND {OPEN}"
        marks = ", ".join("?" * len(collecting))
        collected = (
            f"UPDATE jobs SET collector_until = {NOW} + ? WHERE collector_id = ?"
            f" AND job_id IN ({marks})"
        )

        def renew(conn: sqlite3.Connection) -> None:
            conn.execute(owned, (lease, me))
            if collecting:
                conn.execute(collected, (lease, me, *collecting))

        await self._db.run(renew)

    async def expired_jobs(self, limit: int = 1000) -> list[JobRecord]:
        """Open jobs whose owner and collector leases have both run out (those with no
        lease at all, as rows of older releases, first): their process is gone. Read from
        the partial index of open jobs, so the sweep's cost does not grow with history."""
        sql = (
            f"SELECT * FROM jobs INDEXED BY jobs_open WHERE {OPEN} AND {_EXPIRED}"
            f" AND {_COLLECTOR_FREE} ORDER BY lease_until LIMIT ?"
        )
        rows = await self._db.run(lambda c: c.execute(sql, (max(1, int(limit)),)).fetchall())
        return [JobRecord.from_row(r) for r in rows]

    async def interrupt_if_expired(self, job_id: str, message: str) -> bool:
        """Mark a running local job ``interrupted`` if its owner's lease ran out; True if
        this call did it (so exactly one process reports it)."""
        sql = (
            f"UPDATE jobs SET status = 'interrupted', message = ?, updated_at = {NOW},"
            f" finished_at = COALESCE(finished_at, {NOW}), lease_until = NULL"
            f" WHERE job_id = ? AND status = 'running' AND {_EXPIRED}"
        )
        return bool(await self._db.run(lambda c: c.execute(sql, (message, job_id)).rowcount))

    async def claim_collector(self, job_id: str) -> bool:
        """Become the one process collecting an open job (or stay it); False when another
        live process holds the claim, or the job is finished or unknown. Any job kind."""
        sql = (
            f"UPDATE jobs SET collector_id = ?, collector_until = {NOW} + ?"
            f" WHERE job_id = ? AND {OPEN} AND (collector_id = ? OR {_COLLECTOR_FREE})"
        )
        me = self.owner.instance_id
        args = (me, self.lease_seconds, job_id, me)
        return bool(await self._db.run(lambda c: c.execute(sql, args).rowcount))

    async def release_collector(self, job_id: str) -> None:
        """Give up collecting a job (finished, or no longer watched here)."""
        sql = (
            "UPDATE jobs SET collector_id = NULL, collector_until = NULL"
            " WHERE job_id = ? AND collector_id = ?"
        )
        args = (job_id, self.owner.instance_id)
        await self._db.run(lambda c: c.execute(sql, args))

    async def release_all(self) -> None:
        """At shutdown: every collector claim, and the leases of open upstream jobs
        (status other than 'running'), so other processes take them over at once.
        Local jobs keep theirs until their end is recorded."""
        me = self.owner.instance_id
        collectors = (
            "UPDATE jobs SET collector_id = NULL, collector_until = NULL WHERE collector_id = ?"
        )
        leases = (
            f"UPDATE jobs SET lease_until = NULL WHERE owner_id = ? AND {OPEN}"
            " AND status != 'running'"
        )

        def release(conn: sqlite3.Connection) -> None:
            conn.execute(collectors, (me,))
            conn.execute(leases, (me,))

        await self._db.run(release)

    async def job_of_hook(self, hook_id: str) -> JobRecord | None:
        """The open job whose row names this hook id (any server may receive the hook)."""
        sql = f"SELECT * FROM jobs WHERE {OPEN} AND request_args LIKE ?"
        pattern = f'%"hook_id": "{hook_id}"%'
        rows = await self._db.run(lambda c: c.execute(sql, (pattern,)).fetchall())
        for row in rows:
            record = JobRecord.from_row(row)
            if (record.request_args or {}).get("hook_id") == hook_id:
                return record
        return None

    async def use_hook(self, job_id: str, hook_id: str) -> bool:
        """Mark a job's hook token used, once across every server: True if this call did."""
        read = "SELECT request_args FROM jobs WHERE job_id = ?"
        swap = "UPDATE jobs SET request_args = ? WHERE job_id = ? AND request_args = ?"

        def use(conn: sqlite3.Connection) -> bool:
            row = conn.execute(read, (job_id,)).fetchone()
            args = json.loads(row[0]) if row is not None and row[0] else {}
            if args.get("hook_id") != hook_id or args.get("hook_used"):
                return False
            fresh = dumps({**args, "hook_used": True})
            return bool(conn.execute(swap, (fresh, job_id, row[0])).rowcount)

        return bool(await self._db.run(use))

    def note_phase(self, job_id: str, phase: str) -> None:
        """Record what a job is doing now; queued, not awaited (phases change often)."""
        sql = "UPDATE jobs SET phase = ? WHERE job_id = ?"
        self._db.submit(lambda c: c.execute(sql, (phase, job_id)))

    async def recent_success(self, dedupe_key: str, since: float) -> JobRecord | None:
        """The newest succeeded job with this dedupe key that ended at ``since`` or later."""
        scope, user = self._scope()
        sql = (
            "SELECT * FROM jobs WHERE dedupe_key = ? AND status = 'succeeded'"
            f" AND image_ids != '[]' AND finished_at >= ?{scope}"
            " ORDER BY finished_at DESC LIMIT 1"
        )
        row = await self._db.run(lambda c: c.execute(sql, (dedupe_key, since, *user)).fetchone())
        return JobRecord.from_row(row) if row else None

    def change_token(self) -> tuple[int, int]:
        """A value that changes when any process commits, read without a query or the
        database thread, so a waiter can look often. A waiter still re-reads now and
        then, since a file system with a coarse clock may show two commits as one."""
        return self._db.change_token()

    async def data_version(self) -> int:
        """A number that changes whenever another connection commits to the database:
        the cheap 'did anything change?' a cross-process waiter asks before reading."""
        row = await self._db.run(lambda c: c.execute("PRAGMA data_version").fetchone())
        return int(row[0])
