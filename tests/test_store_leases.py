"""The store's side of several servers (issue 12): leases, claims, contention, migration.

Each ImageStore here has its own SQLite connection and database thread, so several of
them on one file contend for its locks exactly as several server processes do.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from ttapi_mcp.store import ImageStore
from ttapi_mcp.store import db as store_db
from ttapi_mcp.store.db import MIGRATIONS, Database

pytestmark = pytest.mark.anyio
PREVIOUS_RELEASE = MIGRATIONS[:1]
"""The schema of the release before several servers shared a store."""


def stores(tmp_path: Path, count: int, lease: float = 30.0,
           url: str | None = None) -> list[ImageStore]:
    """Several servers on one store: one SQLite file, or one PostgreSQL schema (``url``)."""
    return [ImageStore(tmp_path / "out", tmp_path / "store.sqlite3", lease_seconds=lease,
                       database_url=url) for _ in range(count)]


async def test_a_database_of_the_previous_release_is_upgraded_with_every_row_kept(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.sqlite3"
    old = Database(path)
    old.open_sync(PREVIOUS_RELEASE)
    now = time.time()
    jobs = [
        ("local-aaaaaaaaaaaa", "generate", "a fox", "running", None, None, "[]",
         '{"dedupe_key": "k1", "model": "dall-e-2"}', now - 50, now - 50, None),
        ("local-bbbbbbbbbbbb", "generate", "a cat", "succeeded", None,
         '{"model": "dall-e-2", "missing": []}', '["img000000001"]',
         '{"dedupe_key": "k2", "model": "dall-e-2"}', now - 40, now - 30, now - 30),
        ("0f4c3a1e-0000-4000-8000-000000000001", "4o", "a boat", "SUBMITTED", None, None, "[]",
         '{"prompt": "a boat", "request_id": "r1"}', now - 20, now - 20, None),
    ]
    image = ("img000000001", str(tmp_path / "out" / "a.png"), "ab" * 32, 10, "image/png", 8, 8,
             "dall-e-2", "a cat", "{}", None, None, None, "local-bbbbbbbbbbbb", "r0", now - 30)
    request = ("r0", "generate_image", "E1", "{}", "ok", None, None, 1.0, None, now - 40, now - 39)

    def fill(conn: sqlite3.Connection) -> None:
        conn.executemany(f"INSERT INTO jobs VALUES ({', '.join('?' * 11)})", jobs)
        conn.execute(f"INSERT INTO images VALUES ({', '.join('?' * 16)})", image)
        conn.execute(f"INSERT INTO requests VALUES ({', '.join('?' * 11)})", request)

    await old.run(fill)
    await old.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1

    async with ImageStore(tmp_path / "out", path) as store:
        with sqlite3.connect(path) as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            kept_jobs = conn.execute(
                "SELECT job_id, kind, prompt, status, message, upstream, image_ids,"
                " request_args, created_at, updated_at, finished_at FROM jobs ORDER BY created_at"
            ).fetchall()
            kept_image = conn.execute("SELECT * FROM images").fetchone()
            kept_request = conn.execute("SELECT * FROM requests").fetchone()
        expired = {r.job_id for r in await store.expired_jobs()}
        found = await store.recent_success("k2", now - 3600)
        running = await store.get_job("local-aaaaaaaaaaaa")
        assert await store.interrupt_if_expired("local-aaaaaaaaaaaa", "gone")
    assert version == len(MIGRATIONS)
    assert kept_jobs == jobs
    # Every older row is the one local user's (per-user isolation came later).
    assert kept_image == (*image, "local") and kept_request == (*request, "local")
    # Upgraded: the dedupe key is a column now; rows of no live owner count as expired.
    assert running is not None and running.dedupe_key == "k1" and running.owner_id is None
    assert expired == {"local-aaaaaaaaaaaa", "0f4c3a1e-0000-4000-8000-000000000001"}
    assert found is not None and found.job_id == "local-bbbbbbbbbbbb"



def _open_at_once(make: Any, count: int = 4) -> tuple[list[BaseException], list[Any]]:
    """Open ``count`` databases from ``make()`` in threads started together (as servers
    starting at once do), close them, and return the errors and the databases opened."""
    errors: list[BaseException] = []
    opened: list[Any] = []

    def start() -> None:
        try:
            db = make()
            db.open_sync()
            opened.append(db)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for db in opened:
        anyio.run(db.close)
    return errors, opened

def test_servers_starting_at_once_on_an_old_database_upgrade_it_once(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    old = Database(path)
    old.open_sync(PREVIOUS_RELEASE)
    anyio.run(old.close)
    errors, opened = _open_at_once(lambda: Database(path))
    assert errors == []
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


async def test_identical_calls_started_at_once_in_three_servers_make_one_job(
    tmp_path: Path, database_url: str | None,
) -> None:
    peers = stores(tmp_path, 3, url=database_url)
    outcomes: dict[int, list[tuple[str, bool]]] = {}
    for store in peers:
        await store.open()
    try:
        for round_ in range(15):
            got: list[tuple[str, bool]] = []

            async def start(store: ImageStore, n: int, got: list[tuple[str, bool]] = got,
                            round_: int = round_) -> None:
                record, created = await store.start_job(
                    f"local-r{round_:02d}s{n}xxxxxxx", "generate", "p", "running",
                    request_args={"round": round_}, dedupe_key=f"key-{round_}")
                got.append((record.job_id, created))

            async with anyio.create_task_group() as tg:
                for n, store in enumerate(peers):
                    tg.start_soon(start, store, n)
            outcomes[round_] = got
    finally:
        for store in peers:
            await store.close()
    for got in outcomes.values():
        assert sum(created for _, created in got) == 1, got
        assert len({job_id for job_id, _ in got}) == 1, got  # the others attached to it


async def test_one_collector_at_a_time_and_a_dead_ones_claim_is_taken_over(
    tmp_path: Path, database_url: str | None,
) -> None:
    a, b, c = stores(tmp_path, 3, lease=0.6, url=database_url)
    async with a, b, c:
        for i in range(10):
            await a.start_job(f"job-{i}", "4o", "p", "SUBMITTED")
        wins: list[tuple[int, str]] = []

        async def claim(store: ImageStore, i: int) -> None:
            if await store.claim_collector(f"job-{i}"):
                wins.append((i, store.owner.instance_id))

        async with anyio.create_task_group() as tg:
            for i in range(10):
                for store in (a, b, c):
                    tg.start_soon(claim, store, i)
        assert sorted(i for i, _ in wins) == list(range(10))  # one winner per job
        holder = {i: owner for i, owner in wins}
        first = next(s for s in (a, b, c) if s.owner.instance_id == holder[0])
        others = [s for s in (a, b, c) if s is not first]
        await anyio.sleep(0.4)
        await first.renew_leases(["job-0"])
        await anyio.sleep(0.4)  # past the first lease, but it was renewed
        assert not await others[0].claim_collector("job-0")
        assert await first.claim_collector("job-0")  # the holder keeps it
        await anyio.sleep(0.8)  # the holder stopped renewing: its claim runs out
        assert await others[0].claim_collector("job-0")
        assert not await first.claim_collector("job-0")
        assert not await others[1].claim_collector("job-0")
        await others[0].update_job("job-0", status="SUCCESS", image_ids=["x"])
        assert not await others[0].claim_collector("job-0")  # finished: nothing to collect


async def test_a_live_owners_job_is_never_touched_and_a_dead_ones_is_interrupted_once(
    tmp_path: Path, database_url: str | None,
) -> None:
    owner, b, c = stores(tmp_path, 3, lease=0.6, url=database_url)
    async with owner, b, c:
        await owner.start_job("local-cccccccccccc", "generate", "p", "running")
        for _ in range(3):  # well past one lease, renewed all along
            await anyio.sleep(0.3)
            await owner.renew_leases([])
            assert await b.expired_jobs() == []
            assert not await b.interrupt_if_expired("local-cccccccccccc", "gone")
        await anyio.sleep(0.8)  # the owner died: no more renewals
        assert [r.job_id for r in await c.expired_jobs()] == ["local-cccccccccccc"]
        results = [await s.interrupt_if_expired("local-cccccccccccc", "gone") for s in (b, c)]
        record = await b.get_job("local-cccccccccccc")
    assert results == [True, False]  # exactly one server reports it
    assert record is not None and record.status == "interrupted" and record.finished_at


async def test_a_lock_held_longer_than_the_busy_timeout_never_reaches_the_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_db, "BUSY_TIMEOUT_SECONDS", 0.05)
    (store,) = stores(tmp_path, 1)
    async with store:
        await store.start_job("local-dddddddddddd", "generate", "p", "running")
        locked, release = threading.Event(), threading.Event()

        def hold_the_write_lock() -> None:
            conn = sqlite3.connect(store.database_path, isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE jobs SET message = 'held' WHERE job_id = 'local-dddddddddddd'")
            locked.set()
            release.wait(10)
            conn.execute("COMMIT")
            conn.close()

        holder = threading.Thread(target=hold_the_write_lock)
        holder.start()
        locked.wait(10)
        threading.Timer(0.5, release.set).start()  # ten busy timeouts
        started = time.monotonic()
        claimed = await store.claim_collector("local-dddddddddddd")
        record = await store.update_job("local-dddddddddddd", status="failed")
        waited = time.monotonic() - started
        holder.join(10)
    assert claimed and record.status == "failed" and record.message == "held"  # no lost update
    assert waited >= 0.4


# -- PostgreSQL: its own migrations, the same schema steps, its row locks -------------------


def test_both_backends_know_the_same_schema_versions() -> None:
    from ttapi_mcp.store.pg import PG_MIGRATIONS

    assert len(PG_MIGRATIONS) == len(MIGRATIONS)  # append one to each, never only one


def test_postgresql_replicas_starting_at_once_on_an_old_database_upgrade_it_once(
    pg_cluster: object,
) -> None:
    import psycopg

    from ttapi_mcp.store.pg import PgDatabase

    url = pg_cluster.new_schema_url()  # type: ignore[attr-defined]
    old = PgDatabase(url)
    old.open_sync(PREVIOUS_RELEASE)
    anyio.run(old.close)
    now = time.time()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO jobs (job_id, kind, status, request_args, created_at, updated_at)"
            " VALUES ('local-aaaaaaaaaaaa', 'generate', 'running', %s, %s, %s)",
            ('{"dedupe_key": "k1"}', now, now))
    errors, opened = _open_at_once(lambda: PgDatabase(url))
    assert errors == [] and len(opened) == 4
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT version FROM ttapi_schema").fetchall() == [(len(MIGRATIONS),)]
        assert conn.execute("SELECT dedupe_key FROM jobs").fetchall() == [("k1",)]


async def test_a_postgresql_row_lock_held_by_another_process_delays_a_claim_without_loss(
    tmp_path: Path, pg_cluster: object,
) -> None:
    import psycopg

    url = pg_cluster.new_schema_url()  # type: ignore[attr-defined]
    (store,) = stores(tmp_path, 1, url=url)
    async with store:
        await store.start_job("local-dddddddddddd", "generate", "p", "running")
        locked, release = threading.Event(), threading.Event()

        def hold_the_row() -> None:
            with psycopg.connect(url) as conn:
                conn.execute("SELECT * FROM jobs WHERE job_id = 'local-dddddddddddd' FOR UPDATE")
                conn.execute("UPDATE jobs SET message = 'held' WHERE job_id = 'local-dddddddddddd'")
                locked.set()
                release.wait(10)

        holder = threading.Thread(target=hold_the_row)
        holder.start()
        locked.wait(10)
        threading.Timer(0.5, release.set).start()
        started = time.monotonic()
        claimed = await store.claim_collector("local-dddddddddddd")
        record = await store.update_job("local-dddddddddddd", status="failed")
        waited = time.monotonic() - started
        holder.join(10)
    assert claimed and record.status == "failed" and record.message == "held"  # no lost update
    assert waited >= 0.4


async def test_an_unreachable_postgresql_is_a_clear_error_without_the_password(
    tmp_path: Path,
) -> None:
    from httpproc import free_port

    from ttapi_mcp.store import StoreError

    url = f"postgresql://ttapi:s3cret-pw@127.0.0.1:{free_port()}/ttapi"
    with pytest.raises(StoreError) as failed:
        await ImageStore(tmp_path / "out", tmp_path / "s.sqlite3", database_url=url).open()
    text = str(failed.value)
    assert "cannot open the PostgreSQL database" in text and "database_url" in text
    assert "s3cret-pw" not in text and "ttapi:***@127.0.0.1" in text


async def test_budget_reservations_of_five_servers_at_once_never_exceed_the_limit(
    tmp_path: Path, database_url: str | None,
) -> None:
    from ttapi_mcp.store.ledger import Limit

    peers = stores(tmp_path, 5, url=database_url)
    for store in peers:
        await store.open()
    limit = Limit(start=0.0, end=2e9, quota=40.0)
    won: list[str] = []
    try:
        async def reserve(store: ImageStore) -> None:
            for _ in range(20):
                got = await store.reserve(now=time.time(), tool="generate_image", model="m",
                                          route="E1", images=1, estimate=1.0, basis="test",
                                          limits=[limit])
                if got.ledger_id:
                    won.append(got.ledger_id)

        async with anyio.create_task_group() as tg:
            for store in peers:
                tg.start_soon(reserve, store)
        held = await peers[0].held_between(0.0, 2e9)
    finally:
        for store in peers:
            await store.close()
    assert len(won) == 40 and held == 40.0


async def test_a_postgresql_connection_cut_by_the_server_is_replaced_and_the_call_goes_on(
    tmp_path: Path, pg_cluster: object,
) -> None:
    import psycopg

    url = pg_cluster.new_schema_url()  # type: ignore[attr-defined]
    (store,) = stores(tmp_path, 1, url=url)
    async with store:
        await store.start_job("local-eeeeeeeeeeee", "generate", "p", "running")
        with psycopg.connect(url, autocommit=True) as admin:  # as a failover or restart does
            cut = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE pid != pg_backend_pid() AND datname = current_database()"
                " AND backend_type = 'client backend'").fetchall()
        record = await store.update_job("local-eeeeeeeeeeee", status="failed")
    assert cut and all(row[0] for row in cut)
    assert record.status == "failed"
