"""The image store against real SQLite files and real image bytes."""

from __future__ import annotations

import hashlib
import io
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import psycopg
import pytest
from PIL import Image

from ttapi_mcp.filenames import image_filename, prompt_slug, safe_child, temp_filename
from ttapi_mcp.store import ImageStore, StoreError
from ttapi_mcp.store.db import MIGRATIONS


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (8, 6), color: int = 0) -> bytes:
    buf = io.BytesIO()
    mode = "RGBA" if fmt in ("PNG", "WEBP") else "RGB"
    Image.new(mode, size, (color % 256, 10, 20, 255)[: len(mode)]).save(buf, fmt)
    return buf.getvalue()


_BACKEND: dict[str, str | None] = {"url": None}


@pytest.fixture(autouse=True)
def _on_each_backend(request: pytest.FixtureRequest, database_url: str | None) -> None:
    """Every test of this file runs on SQLite and on PostgreSQL (see conftest)."""
    if database_url and request.node.get_closest_marker("sqlite_only"):
        pytest.skip("about SQLite's own file and locks")
    _BACKEND["url"] = database_url


def make_store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "out", tmp_path / "db" / "store.sqlite3",
                      database_url=_BACKEND["url"])


def visible_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


@pytest.mark.anyio
async def test_save_png_writes_file_then_row(tmp_path: Path) -> None:
    data = image_bytes("PNG", (8, 6))
    async with make_store(tmp_path) as store:
        image = await store.save_image(
            data, model="gpt-image-1", prompt="A red fox", parameters={"size": "auto"}
        )
        assert image.path.parent == store.output_dir
        assert image.path.read_bytes() == data
        assert image.path.suffix == ".png" and "_a-red-fox_" in image.path.name
        assert (image.mime, image.width, image.height) == ("image/png", 8, 6)
        assert image.sha256 == hashlib.sha256(data).hexdigest()
        assert image.uri == f"ttapi://images/{image.id}"
        assert not [p for p in store.output_dir.iterdir() if p.name.endswith(".tmp")]
        again = await store.get_image(image.id)
        assert again == image
    # a second open of the same files sees the same row
    async with make_store(tmp_path) as store:
        assert await store.count_images() == 1
        assert (await store.get_image(image.id)) == image


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fmt", "ext", "mime"), [("JPEG", ".jpg", "image/jpeg"), ("WEBP", ".webp", "image/webp")]
)
async def test_extension_and_mime_come_from_bytes(
    tmp_path: Path, fmt: str, ext: str, mime: str
) -> None:
    async with make_store(tmp_path) as store:
        image = await store.save_image(
            image_bytes(fmt, (5, 7)), model="m", prompt="p", parameters={"output_format": "png"}
        )
        assert (image.path.suffix, image.mime, image.width, image.height) == (ext, mime, 5, 7)


@pytest.mark.anyio
async def test_non_image_refused_and_nothing_written(tmp_path: Path) -> None:
    gif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(gif, "GIF")
    async with make_store(tmp_path) as store:
        for data in (gif.getvalue(), b"hello, not an image"):
            with pytest.raises(StoreError, match="PNG, JPEG or WebP"):
                await store.save_image(data, model="m", prompt="p", parameters={})
        assert list(store.output_dir.iterdir()) == []
        assert await store.count_images() == 0


@pytest.mark.anyio
@pytest.mark.sqlite_only
async def test_schema_version_and_wal(tmp_path: Path) -> None:
    async with make_store(tmp_path) as store:
        db = store.database_path
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.execute("PRAGMA user_version=99")
        conn.commit()
    finally:
        conn.close()
    with pytest.raises(StoreError, match="newer than this release"):
        await make_store(tmp_path).open()


@pytest.mark.anyio
async def test_secrets_dropped_from_parameters(tmp_path: Path) -> None:
    params = {"size": "1024x1024", "api_key": "sk-canary", "headers": {"Authorization": "x"}}
    async with make_store(tmp_path) as store:
        image = await store.save_image(image_bytes(), model="m", prompt="p", parameters=params)
        request_id = await store.start_request("generate_image", "/v1/images", params)
        rows = await store._db.run(lambda c: [
            *c.execute("SELECT * FROM images").fetchall(),
            *c.execute("SELECT * FROM requests").fetchall()])
    assert image.parameters == {"size": "1024x1024", "headers": {}}
    assert len(rows) == 2 and "sk-canary" not in repr([tuple(r) for r in rows])
    if _BACKEND["url"] is None:
        assert b"sk-canary" not in store.database_path.read_bytes()
    assert request_id


@pytest.mark.anyio
async def test_a_listed_summary_agrees_with_the_full_record(tmp_path: Path) -> None:
    async with make_store(tmp_path) as store:
        saved = await store.save_image(image_bytes("JPEG", size=(30, 20)), model="dall-e-2",
                                       prompt="a wide one", parameters={"size": "30x20"})
        [summary], _ = await store.list_images()
        full = await store.get_image(saved.id)

    assert full is not None
    assert summary == (full.id, full.path.name, full.mime, full.bytes, full.width,
                       full.height, full.model, full.prompt, full.created_at)
    assert (summary.width, summary.height, summary.mime) == (30, 20, "image/jpeg")


@pytest.mark.anyio
async def test_pagination_newest_first_over_hundreds(tmp_path: Path) -> None:
    data = image_bytes()
    async with make_store(tmp_path) as store:
        saved = []
        for i in range(230):
            saved.append(await store.save_image(data, model="m", prompt=f"p{i}", parameters={}))
        assert await store.count_images() == 230
        seen: list[str] = []
        cursor = None
        for _ in range(10):  # 230 / 50 -> 5 pages; bounded
            page, cursor = await store.list_images(limit=50, cursor=cursor)
            seen.extend(im.id for im in page)
            if cursor is None:
                break
        assert cursor is None
        expected = [
            im.id for im in sorted(saved, key=lambda im: (im.created_at, im.id), reverse=True)
        ]
        assert seen == expected
        with pytest.raises(StoreError, match="invalid cursor"):
            await store.list_images(cursor="not-a-cursor!!")


@pytest.mark.anyio
async def test_concurrent_saves_all_present(tmp_path: Path) -> None:
    payloads = [image_bytes("PNG", (6 + i, 6), color=i) for i in range(20)]
    results = {}
    async with make_store(tmp_path) as store:

        async def save(i: int) -> None:
            results[i] = await store.save_image(
                payloads[i], model="m", prompt="same prompt", parameters={"i": i}
            )

        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(save, i)
        assert await store.count_images() == 20
        for i, image in results.items():
            stored = await store.get_image(image.id)
            assert stored is not None and stored.parameters == {"i": i}
            assert hashlib.sha256(stored.path.read_bytes()).hexdigest() == stored.sha256
            assert stored.sha256 == hashlib.sha256(payloads[i]).hexdigest()
        assert len(visible_files(store.output_dir)) == 20
        assert (await store.consistency_report()).ok


@pytest.mark.anyio
async def test_adopt_file(tmp_path: Path) -> None:
    data = image_bytes("JPEG", (9, 4))
    async with make_store(tmp_path) as store:
        tmp = store.output_dir / temp_filename("download")
        tmp.write_bytes(data)
        image = await store.adopt_file(
            tmp,
            model="dall-e-3",
            prompt="cat",
            parameters={},
            source_url="https://cdn.example/x.png",
        )
        assert not tmp.exists() and image.path.read_bytes() == data
        assert image.path.suffix == ".jpg" and image.source_url == "https://cdn.example/x.png"
        assert image.sha256 == hashlib.sha256(data).hexdigest()
        bad = store.output_dir / temp_filename("bad")
        bad.write_bytes(b"<html>expired</html>")
        with pytest.raises(StoreError, match="not an accepted image"):
            await store.adopt_file(bad, model="m", prompt="p", parameters={})
        assert not bad.exists()
        outside = tmp_path / "elsewhere.png"
        outside.write_bytes(data)
        with pytest.raises(StoreError, match="directly inside"):
            await store.adopt_file(outside, model="m", prompt="p", parameters={})
        assert await store.count_images() == 1


@pytest.mark.anyio
async def test_consistency_report_and_temp_cleanup(tmp_path: Path) -> None:
    async with make_store(tmp_path) as store:
        kept = await store.save_image(image_bytes(), model="m", prompt="kept", parameters={})
        gone = await store.save_image(image_bytes(), model="m", prompt="gone", parameters={})
        gone.path.unlink()
        orphan = store.output_dir / "20240101-000000_orphan_abc.png"
        orphan.write_bytes(image_bytes())
        # a temp file of a dead process, and one of this (live) process
        dead = store.output_dir / ".20240101-000000_x_y.png.999999999.tmp"
        dead.write_bytes(b"partial")
        live = store.output_dir / temp_filename("inflight")
        live.write_bytes(b"partial")
        report = await store.consistency_report()
        assert report.files_without_rows == [orphan]
        assert report.rows_without_files == [gone.id]
        assert sorted(report.temp_files) == sorted([dead, live])
        assert not report.ok
        removed = await store.cleanup_temp_files()
        assert removed == [dead] and live.exists() and kept.path.exists()
        assert await store.cleanup_temp_files(max_age=0) == [live]


@pytest.mark.anyio
async def test_requests_lifecycle(tmp_path: Path) -> None:
    async with make_store(tmp_path) as store:
        rid = await store.start_request("edit_image", "/v1/images/edits", {"n": 2})
        pending = await store.get_request(rid)
        assert pending is not None and pending["status"] == "pending"
        await store.finish_request(
            rid,
            "partial",
            usage={"total_tokens": 7},
            quota="2",
            error="image 2 could not be decoded",
        )
        done = await store.get_request(rid)
        assert done is not None
        assert (done["status"], done["usage"], done["quota"]) == (
            "partial",
            {"total_tokens": 7},
            "2",
        )
        assert done["parameters"] == {"n": 2} and done["duration_s"] >= 0
        with pytest.raises(StoreError, match="unknown request status"):
            await store.finish_request(rid, "weird")


@pytest.mark.anyio
async def test_jobs_upsert_update_list(tmp_path: Path) -> None:
    async with make_store(tmp_path) as store:
        job = await store.upsert_job(
            "job-1",
            "4o",
            "draw a cat",
            "ON_QUEUE",
            request_args={"prompt": "draw a cat", "token": "secret"},
        )
        assert job.finished_at is None and job.request_args == {"prompt": "draw a cat"}
        job = await store.upsert_job(
            "job-1", "4o", None, "SUCCESS", upstream={"imageUrl": "https://x/y.png"}
        )
        assert job.prompt == "draw a cat" and job.status == "SUCCESS"
        assert job.finished_at is not None and job.upstream == {"imageUrl": "https://x/y.png"}
        image = await store.save_image(
            image_bytes(), model="gpt-4o", prompt="draw a cat", parameters={}, job_id="job-1"
        )
        job = await store.update_job("job-1", image_ids=[image.id], message="success")
        assert job.image_ids == [image.id] and job.message == "success"
        assert [im.id for im in await store.images_for_job("job-1")] == [image.id]
        await store.upsert_job("job-2", "4o", "second", "ON_QUEUE")
        assert [j.job_id for j in await store.list_jobs()] == ["job-2", "job-1"]
        failed = await store.update_job("job-2", status="FAILED", message="job failed")
        assert failed.finished_at is not None
        with pytest.raises(KeyError):
            await store.update_job("nope", status="FAILED")
        with pytest.raises(StoreError, match="unknown job fields"):
            await store.update_job("job-2", path="/etc/passwd")
        assert await store.get_job("nope") is None


@pytest.mark.parametrize(
    "prompt",
    [
        "../../etc/passwd",
        "a\x00b/../c",
        "🦊🔥 emoji only 🌈",
        "CON",
        "NUL.txt",
        "x" * 5000,
        "",
        "..",
        "/",
        "C:\\Windows\\system32",
        "Ünïcödé café",
        "---",
        "\u202eevil",
    ],
)
def test_filenames_are_safe(tmp_path: Path, prompt: str) -> None:
    name = image_filename(1_700_000_000.0, prompt, "abc123def456", "png")
    assert name.isascii() and len(name) <= 80
    assert all(c.isalnum() or c in "-_." for c in name)
    stamp, slug, rest = name.split("_")
    assert rest == "abc123def456.png" and len(stamp) == 15
    assert slug and len(slug) <= 40 and not slug.startswith("-") and not slug.endswith("-")
    assert safe_child(tmp_path, name).parent == tmp_path.resolve()


def test_slug_folds_accents_and_falls_back() -> None:
    assert prompt_slug("Crème Brûlée at Noël!") == "creme-brulee-at-noel"
    assert prompt_slug("🦊") == "image"
    assert prompt_slug(None) == "image"


def test_safe_child_refuses_escapes(tmp_path: Path) -> None:
    for name in ("../x.png", "a/b.png", "..", ".", "", os.sep + "x.png"):
        with pytest.raises(ValueError, match="outside"):
            safe_child(tmp_path, name)
    with pytest.raises(ValueError):
        image_filename(0.0, "p", "../x", "png")
    with pytest.raises(ValueError):
        image_filename(0.0, "p", "abc", "png/../x")


@pytest.mark.anyio
async def test_cancelled_save_keeps_file_and_row_together(tmp_path: Path) -> None:
    async with make_store(tmp_path) as store:
        with anyio.CancelScope() as scope:
            scope.cancel()  # already cancelled when the save starts: it still completes whole
            await store.save_image(image_bytes(), model="m", prompt="p", parameters={})
        report = await store.consistency_report()
        assert report.ok
        assert await store.count_images() == len(visible_files(store.output_dir)) == 1


# -- the database thread: submission order, unawaited writes, cancellation ----------------


def _slow_insert(request_id: str, delay: float = 0.2) -> Callable[[sqlite3.Connection], object]:
    def insert(conn: sqlite3.Connection) -> object:
        time.sleep(delay)  # the next statement is queued meanwhile
        return conn.execute(
            "INSERT INTO requests (id, tool, status, created_at) VALUES (?, 't', 'ok', 0)",
            (request_id,))
    return insert


def _count(request_id: str) -> Callable[[sqlite3.Connection], int]:
    sql = "SELECT COUNT(*) FROM requests WHERE id = ?"
    return lambda conn: int(conn.execute(sql, (request_id,)).fetchone()[0])


@pytest.mark.anyio
async def test_an_unawaited_write_runs_before_what_is_awaited_after_it(tmp_path: Path) -> None:
    async with make_store(tmp_path) as store:
        store._db.submit(_slow_insert("r1"))
        assert await store._db.run(_count("r1")) == 1
        rid = await store.start_request("generate_image", "E1", {"n": 1})
        await store.finish_request(rid, "ok", usage={"total_tokens": 3})
        done = await store.get_request(rid)
    assert done is not None and done["status"] == "ok" and done["usage"] == {"total_tokens": 3}


@pytest.mark.anyio
async def test_a_failed_unawaited_write_is_logged_and_the_store_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with make_store(tmp_path) as store:
        store._db.submit(lambda conn: conn.execute("INSERT INTO no_such_table VALUES (1)"))
        store._db.submit(_slow_insert("r2", delay=0))
        assert await store._db.run(_count("r2")) == 1
    assert "a queued store write failed" in caplog.text
    assert "no such table" in caplog.text or 'does not exist' in caplog.text


@pytest.mark.anyio
async def test_close_waits_for_queued_writes(tmp_path: Path) -> None:
    async with make_store(tmp_path) as store:
        store._db.submit(_slow_insert("r3"))
    async with make_store(tmp_path) as reopened:
        assert await reopened._db.run(_count("r3")) == 1


@pytest.mark.anyio
async def test_a_cancelled_caller_still_waits_for_its_statement(tmp_path: Path) -> None:
    async with make_store(tmp_path) as store:
        started = time.monotonic()
        with anyio.move_on_after(0.05) as scope:
            await store._db.run(_slow_insert("r4"))
        assert scope.cancel_called
        assert time.monotonic() - started >= 0.2  # it waited for the statement to end
        assert await store._db.run(_count("r4")) == 1


@pytest.mark.anyio
async def test_a_failed_check_leaves_no_file_and_no_row(tmp_path: Path) -> None:
    seen: list[bytes] = []

    def refuse(data: bytes) -> None:
        seen.append(data)
        raise ValueError("the image data is incomplete")

    data = image_bytes()
    async with make_store(tmp_path) as store:
        with pytest.raises(ValueError, match="incomplete"):
            await store.save_image(data, model="m", prompt="p", parameters={}, check=refuse)
        assert seen == [data]
        assert list(store.output_dir.iterdir()) == []  # no image, no temp file
        assert await store.count_images() == 0
        kept = await store.save_image(data, model="m", prompt="p", parameters={},
                                      check=seen.append)
    assert kept.path.read_bytes() == data and seen[-1] == data


@pytest.mark.anyio
async def test_a_queued_statement_runs_even_if_its_task_is_cancelled_outright(
    tmp_path: Path,
) -> None:
    """A plain asyncio cancel (as at interpreter shutdown) must not drop a queued write."""
    import asyncio

    async with make_store(tmp_path) as store:
        store._db.submit(_slow_insert("busy"))  # the statement below waits in the queue
        task = asyncio.ensure_future(store._db.run(_slow_insert("queued", delay=0)))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await store._db.run(_count("queued")) == 1


@pytest.mark.anyio
async def test_a_request_row_that_must_exist_first_is_awaited(tmp_path: Path) -> None:
    async with make_store(tmp_path) as store:
        rid = await store.start_request("gpt4o_image", "E4", {"prompt": "p"}, wait=True)
        assert (await store.get_request(rid) or {}).get("status") == "pending"
        await store._db.run(lambda conn: conn.execute("DROP TABLE requests"))
        await store.start_request("generate_image", "E1", {})  # queued: only logged
        with pytest.raises((sqlite3.Error, psycopg.Error), match="no such table|does not exist"):
            await store.start_request("gpt4o_image", "E4", {}, wait=True)
