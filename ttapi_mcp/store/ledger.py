"""The spend ledger: one row per paid call, written before the call is sent.

A row starts ``reserved`` (its estimate counts against the budgets while the call is in
flight) and ends ``spent`` (it may have been billed: what TTAPI reported, else the
estimate, keeps counting) or ``released`` (nothing was billed: it counts 0).

Budgets must hold across processes sharing one database, so a reservation is one
``BEGIN IMMEDIATE`` transaction: sum what the periods already hold, compare, insert.
SQLite lets one writer in at a time, so two processes can never both see room for the
last call. A writer that finds the database busy waits (the connection's busy
timeout) and the BEGIN is retried a few times, so "database is locked" never surfaces.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..filenames import new_short_id
from .db import Database, dumps

BEGIN_ATTEMPTS = 8
_HELD_BETWEEN = (
    "SELECT COALESCE(SUM(held_quota), 0) FROM ledger WHERE created_at >= ? AND created_at < ?"
)
_USER_HELD_BETWEEN = _HELD_BETWEEN + " AND user_id = ?"


@dataclass(frozen=True)
class Limit:
    """A budget over [start, end): at most ``quota`` held by rows created in it, by
    everyone's rows, or (``per_user``) by the rows of the user the new row is for."""

    start: float
    end: float
    quota: float
    per_user: bool = False


@dataclass(frozen=True)
class Reserved:
    """The outcome of :meth:`LedgerMixin.reserve`: the row's id, or the first limit
    that had no room (with what the period already held)."""

    ledger_id: str | None
    refused_by: int | None = None
    held: float = 0.0


def _held(start: float, end: float, user: str | None) -> tuple[str, tuple[Any, ...]]:
    """The query summing the quota held in [start, end), everyone's or ``user``'s."""
    if user is None:
        return _HELD_BETWEEN, (start, end)
    return _USER_HELD_BETWEEN, (start, end, user)


def _begin_immediate(conn: sqlite3.Connection) -> None:
    """Take the write lock now; another process holding it makes us wait, not fail."""
    for attempt in range(BEGIN_ATTEMPTS):
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if ("locked" not in text and "busy" not in text) or attempt == BEGIN_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


class LedgerMixin:
    """Ledger reads and writes; mixed into :class:`ImageStore`, which owns ``_db``."""

    _db: Database
    _owner_for_write: Callable[[], str]

    async def reserve(
        self,
        *,
        now: float,
        tool: str,
        model: str,
        route: str,
        images: int,
        estimate: float,
        basis: str,
        limits: Sequence[Limit] = (),
        job_id: str | None = None,
    ) -> Reserved:
        """Insert a ``reserved`` row unless a limit has no room for ``estimate``; every
        limit is summed and checked under the one write lock the insert holds."""
        ledger_id = new_short_id()
        user = self._owner_for_write()
        row = (ledger_id, now, tool, model, route, images, estimate, estimate, "reserved", basis,
               job_id, user)
        insert = (
            "INSERT INTO ledger (id, created_at, tool, model, route, images, estimate_quota,"
            " held_quota, state, basis, job_id, user_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )

        def reserve_sync(conn: sqlite3.Connection) -> Reserved:
            _begin_immediate(conn)
            for index, limit in enumerate(limits):
                sql, args = _held(limit.start, limit.end, user if limit.per_user else None)
                held = float(conn.execute(sql, args).fetchone()[0])
                if held + estimate > limit.quota + 1e-9:
                    return Reserved(None, refused_by=index, held=held)
            conn.execute(insert, row)
            return Reserved(ledger_id)

        return await self._db.run(reserve_sync)

    async def settle(
        self,
        ledger_id: str,
        *,
        billed: bool,
        outcome: str,
        reported_quota: float | None = None,
        usage: dict[str, Any] | None = None,
    ) -> None:
        """End a reserved row: kept (what TTAPI reported, else the estimate) or released.

        A row already ended stays as it is, so settling twice is harmless.
        """
        sql = (
            "UPDATE ledger SET state = ?, held_quota = ?, reported_quota = ?, usage = ?,"
            " outcome = ?, maybe_billed = ?, finished_at = ? WHERE id = ? AND state = 'reserved'"
        )

        def settle_sync(conn: sqlite3.Connection) -> None:
            found = conn.execute("SELECT estimate_quota FROM ledger WHERE id = ?",
                                 (ledger_id,)).fetchone()
            if found is None:
                return
            held = (reported_quota if reported_quota is not None else found[0]) if billed else 0.0
            conn.execute(sql, ("spent" if billed else "released", held, reported_quota,
                               dumps(usage), outcome, int(billed), time.time(), ledger_id))

        await self._db.run(settle_sync)

    async def drop_reservation(self, ledger_id: str) -> None:
        """Forget a reservation whose call was refused after all (nothing was sent)."""
        sql = "DELETE FROM ledger WHERE id = ? AND state = 'reserved'"
        await self._db.run(lambda c: c.execute(sql, (ledger_id,)))

    async def attach_job(self, ledger_id: str, job_id: str) -> None:
        """Link a reservation to the TTAPI job it paid for (settled when the job ends)."""
        sql = "UPDATE ledger SET job_id = ? WHERE id = ?"
        await self._db.run(lambda c: c.execute(sql, (job_id, ledger_id)))

    async def reservation_for_job(self, job_id: str) -> str | None:
        """The still-reserved row of a job, if any."""
        sql = "SELECT id FROM ledger WHERE job_id = ? AND state = 'reserved'"
        row = await self._db.run(lambda c: c.execute(sql, (job_id,)).fetchone())
        return str(row[0]) if row else None

    async def held_between(self, start: float, end: float, user: str | None = None) -> float:
        """Quota spent or reserved by calls started in [start, end) (by ``user`` only,
        when given)."""
        sql, args = _held(start, end, user)
        row = await self._db.run(lambda c: c.execute(sql, args).fetchone())
        return float(row[0])

    async def ledger_rows(
        self, since: float | None = None, limit: int = 100_000
    ) -> list[dict[str, Any]]:
        """Rows created at or after ``since``, oldest first; ``usage`` decoded."""
        sql = "SELECT * FROM ledger WHERE created_at >= ? ORDER BY created_at, id LIMIT ?"
        rows = await self._db.run(
            lambda c: c.execute(sql, (since if since is not None else 0.0, limit)).fetchall()
        )
        out = []
        for row in rows:
            record = dict(row)
            record["usage"] = json.loads(record["usage"]) if record["usage"] else None
            out.append(record)
        return out
