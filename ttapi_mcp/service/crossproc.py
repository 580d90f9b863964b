"""Waiting in this server for a job another server process runs: follow its row.

Any process can answer for any job. The owner writes the job's phase when it changes and
its outcome when it ends (images, usage, missing, message: everything
:func:`.localjobs.result_from_record` needs), so a waiter here re-reads the row whenever
the store changed, and returns what the owner's own waiter gets.

How a waiter learns the store changed, measured (bench/RESULTS.md): a query costs about
0.1 ms of CPU, most of it the hop to the database thread, and ``PRAGMA data_version``
costs the same (it takes the same hop); a ``stat`` of the WAL file costs 4 us on the event
loop. So the waiter stats every ``store_poll_seconds`` and queries only when the file
changed, and at least every :data:`REREAD_SECONDS` in case a coarse file clock hid one.
Right after a change it looks again within :data:`QUICK_SECONDS` (a job's images commit
just before its row): a median of 20 ms from the owner's commit to the waiter's answer.

Cancelling such a wait stops only the wait: the job is not this process's to stop.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

from ttapi_mcp.store import JobRecord

from .common import Services
from .progress import Ticker

REREAD_SECONDS = 1.0
QUICK_SECONDS = 0.01
"""After the store changed, look again this soon: a job's images are committed a few
milliseconds before its own row, so the change that matters often comes next."""


class StoreWatch:
    """When a follower should read a row again: when the store changed (soon after a
    change, then backing off to ``store_poll_seconds``), or every REREAD_SECONDS."""

    def __init__(self, services: Services) -> None:
        self._store = services.store
        self._interval = services.settings.store_poll_seconds
        self._delay = self._interval
        self._token = self._store.change_token()  # before the first read of the row
        self._last_read = anyio.current_time()

    async def next(self, within: float, wake: anyio.Event | None = None) -> None:
        """Return when the row is worth reading again, ``wake`` is set, or ``within``
        seconds have passed."""
        deadline = anyio.current_time() + within
        while (now := anyio.current_time()) < deadline:
            with anyio.move_on_after(min(self._delay, deadline - now)):
                await (wake.wait() if wake is not None else anyio.sleep_forever())
            if wake is not None and wake.is_set():
                return
            fresh = self._store.change_token()
            if fresh != self._token:
                self._token = fresh
                quick = self._delay >= self._interval  # one quick burst per interval
                self._delay = QUICK_SECONDS if quick else min(self._delay * 2, self._interval)
                self._last_read = anyio.current_time()
                return
            self._delay = min(self._delay * 2, self._interval)
            if anyio.current_time() - self._last_read >= REREAD_SECONDS:
                self._last_read = anyio.current_time()
                return


def row_phase(record: JobRecord) -> str:
    """What a job is doing, as its owner last wrote it."""
    return record.phase or record.status


async def follow_row(
    services: Services,
    job_id: str,
    ticker: Ticker,
    budget: float,
    ended: Callable[[JobRecord], bool],
) -> JobRecord | None:
    """The job's row once ``ended(row)``, or as it is when ``budget`` seconds are spent
    (None if there is no such job). Progress says the owner's phase, as the owner's does."""
    watch = StoreWatch(services)
    record = await services.store.get_job(job_id)
    if record is None:
        return None
    phase = [row_phase(record)]
    ticker.follow(lambda: f"job {job_id}: {phase[0]}")
    deadline = anyio.current_time() + budget
    while not ended(record) and anyio.current_time() < deadline:
        await watch.next(deadline - anyio.current_time())
        record = await services.store.get_job(job_id) or record
        if row_phase(record) != phase[0]:
            phase[0] = row_phase(record)
            ticker.poke()
    return record
