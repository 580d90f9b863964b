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

Cancelling such a wait stops only the wait: the job is not this process's to stop.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

from ttapi_mcp.store import JobRecord

from .common import Services
from .progress import Ticker

REREAD_SECONDS = 1.0


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
    store = services.store
    interval = services.settings.store_poll_seconds
    token = store.change_token()
    record = await store.get_job(job_id)
    if record is None:
        return None
    phase = [row_phase(record)]
    ticker.follow(lambda: f"job {job_id}: {phase[0]}")
    deadline = anyio.current_time() + budget
    last_read = anyio.current_time()
    while not ended(record):
        now = anyio.current_time()
        if now >= deadline:
            break
        await anyio.sleep(min(interval, deadline - now))
        fresh = store.change_token()
        if fresh == token and anyio.current_time() - last_read < REREAD_SECONDS:
            continue
        token, last_read = fresh, anyio.current_time()
        record = await store.get_job(job_id) or record
        if row_phase(record) != phase[0]:
            phase[0] = row_phase(record)
            ticker.poke()
    return record


async def store_changed(services: Services, wake: anyio.Event, within: float) -> None:
    """Return once another process committed to the store, ``wake`` is set, or ``within``
    seconds have passed: a cheap wait for a follower between two reads of a row."""
    store = services.store
    interval = services.settings.store_poll_seconds
    token = store.change_token()
    with anyio.move_on_after(within):
        while not wake.is_set():
            with anyio.move_on_after(interval):
                await wake.wait()
            if store.change_token() != token:
                return
