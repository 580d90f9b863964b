"""Claims on an upstream submit, so identical gpt4o_image calls pay once.

An upstream job's id is only known once TTAPI answers its submit, so the job row cannot
be the claim. Before submitting, a caller claims the call's dedupe key in the small
``submit_claims`` table; an identical caller (any process on the store) sees the claim
and waits until the job row with that key appears, then attaches to it.

SQL semantics (to port to another backend), all in one ``BEGIN IMMEDIATE`` transaction
(PostgreSQL: one transaction with ``SELECT ... FOR UPDATE`` on the claim, or
``INSERT ... ON CONFLICT DO UPDATE ... WHERE lease expired``):

1. a job of kind 4o/gpt with the key (``jobs.dedupe_key``) that is unfinished
   (:data:`UNFINISHED`), or done upstream and being downloaded by a live collector
   (:data:`DOWNLOADING`, ``collector_until`` ahead), or saved (``SUCCESS``) at or after
   ``since``: answer ``("job", its job_id)``, the newest;
2. else a claim row with the key whose ``lease_until`` (database clock) is still ahead:
   answer ``("wait", None)``;
3. else insert (or replace the expired) claim with a fresh token and
   ``lease_until = now + lease``: answer ``("claimed", token)``.

The claimer renews its claim's lease while its submit is under way (it may wait for an
upstream slot far longer than one lease), and deletes the claim (``WHERE token = ?``)
when the job row is written or the submit failed; a crashed claimer's claim simply
expires.
"""

from __future__ import annotations

import sqlite3
import time

from ..filenames import new_short_id
from .db import Database
from .leases import NOW, Owner

UNFINISHED = "(finished_at IS NULL AND status NOT IN ('SUCCESS', 'FAILED'))"
"""Upstream job still running (whoever watches it, or nobody yet)."""
DOWNLOADING = "(status = 'SUCCESS' AND image_ids = '[]')"
"""Done upstream, image not saved: attached to only while a collector is at it (a job
whose download failed is not, so a re-run is a new job, as its error advises)."""


class SubmitClaimsMixin:
    """Claim-before-submit for upstream jobs; mixed into :class:`ImageStore`."""

    _db: Database
    owner: Owner

    async def claim_submit(
        self, dedupe_key: str, since: float, lease: float
    ) -> tuple[str, str | None]:
        """``("job", job_id)`` to attach to, ``("wait", None)`` while an identical submit
        is under way, or ``("claimed", token)``: this caller submits (see module doc)."""
        job_sql = (
            "SELECT job_id FROM jobs WHERE dedupe_key = ? AND kind IN ('4o', 'gpt') AND ("
            f" {UNFINISHED} OR ({DOWNLOADING} AND collector_until > {NOW})"
            " OR (status = 'SUCCESS' AND image_ids != '[]'"
            " AND COALESCE(finished_at, updated_at) >= ?)) ORDER BY created_at DESC LIMIT 1"
        )
        claim_sql = f"SELECT token FROM submit_claims WHERE dedupe_key = ? AND lease_until > {NOW}"
        insert = (
            "INSERT INTO submit_claims (dedupe_key, token, owner_id, lease_until, created_at)"
            f" VALUES (?, ?, ?, {NOW} + ?, ?) ON CONFLICT (dedupe_key) DO UPDATE SET"
            " token = excluded.token, owner_id = excluded.owner_id,"
            " lease_until = excluded.lease_until, created_at = excluded.created_at"
        )
        token = "claim-" + new_short_id()

        def claim(conn: sqlite3.Connection) -> tuple[str, str | None]:
            job = conn.execute(job_sql, (dedupe_key, since)).fetchone()
            if job is not None:
                return "job", str(job[0])
            if conn.execute(claim_sql, (dedupe_key,)).fetchone() is not None:
                return "wait", None
            conn.execute(insert, (dedupe_key, token, self.owner.instance_id, lease, time.time()))
            return "claimed", token

        return await self._db.run(claim, immediate=True)

    async def renew_submit(self, token: str, lease: float) -> None:
        """Extend this caller's claim by ``lease`` seconds from now (database clock)."""
        sql = f"UPDATE submit_claims SET lease_until = {NOW} + ? WHERE token = ?"
        await self._db.run(lambda c: c.execute(sql, (lease, token)))

    async def release_submit(self, token: str) -> None:
        """Drop this caller's claim (its job row is written, or its submit failed)."""
        sql = "DELETE FROM submit_claims WHERE token = ?"
        await self._db.run(lambda c: c.execute(sql, (token,)))
