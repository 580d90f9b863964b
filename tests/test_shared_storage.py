"""Image bytes in a shared S3 bucket (moto's S3 server, a real process on 127.0.0.1).

Two servers, each with its own output folder, share one database and one bucket, as
replicas do: an image one saves is read, previewed, shown in the gallery and edited
from by the other; a row never exists without its object; ``doctor`` checks and repairs
objects and rows; the storage's secret never shows.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import httpx2
import pytest
from conftest import CANARY_KEY, make_server_settings, mcp_client, serve_http
from PIL import Image
from test_app_server import apps_client
from test_doctor import _checks, _closed_port, _doctor, _env

from ttapi_mcp.emulator import Emulator
from ttapi_mcp.storage import shared_storage
from ttapi_mcp.store import ImageStore, StoreError

pytestmark = pytest.mark.anyio
DALLE2 = {"model": "dall-e-2", "size": "256x256", "response_format": "b64_json"}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _png(colour: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", size, colour + (255,)).save(buf, "PNG")
    return buf.getvalue()


def _s3_settings(s3: Any, bucket: str) -> dict[str, Any]:
    return {k.removeprefix("TTAPI_").lower(): v for k, v in s3.env(bucket).items()}


def _server(emulator: Emulator, tmp_path: Path, name: str, s3: Any, bucket: str) -> Any:
    """A server with its own output folder, on the one database and the one bucket."""
    return make_server_settings(emulator.base_url, tmp_path, output_dir=tmp_path / name,
                                **_s3_settings(s3, bucket))


async def test_one_server_saves_and_another_reads_previews_shows_and_edits(
    emulator: Emulator, tmp_path: Path, s3_server: Any
) -> None:
    bucket = s3_server.bucket()
    a = _server(emulator, tmp_path, "out-a", s3_server, bucket)
    b = _server(emulator, tmp_path, "out-b", s3_server, bucket)
    async with mcp_client(a) as client:
        made = await client.call_tool("generate_image", {"prompt": "a shared harbour",
                                                         **DALLE2})
    assert not made.is_error, made.content
    [image] = made.structured_content["images"]
    name = Path(image["path"]).name
    saved = Path(image["path"]).read_bytes()
    assert s3_server.objects(bucket)[name] == saved  # the object is the saved image
    assert not (tmp_path / "out-b" / name).exists()

    async with apps_client(b) as client:
        read = await client.read_resource(image["uri"])
        shown = await client.call_tool("app_images", {"image_ids": [image["id"]],
                                                      "size": "full"})
        gallery = await client.call_tool("app_gallery", {})
        edited = await client.call_tool("edit_image", {
            "prompt": "the same harbour at night", "images": [image["uri"]],
            "model": "gpt-image-1", "size": "1024x1024", "quality": "low"})
    assert base64.b64decode(read.contents[0].blob) == saved
    assert base64.b64decode(shown.content[0].data) == saved
    tiles = {t["id"]: t for t in gallery.structured_content["items"]}
    assert tiles[image["id"]]["thumb"].startswith("data:image/")  # a real thumbnail
    assert (tmp_path / "out-b" / name).read_bytes() == saved  # B's copy, fetched once
    assert not edited.is_error, edited.content
    [result] = edited.structured_content["images"]
    assert Path(result["path"]).parent == tmp_path / "out-b"
    assert any(c.type == "image" for c in edited.content)  # its preview
    edit_request = emulator.api_requests("E2")[-1]
    assert len(saved) in {size for *_, size in edit_request.files}  # A's image was sent

    objects = s3_server.objects(bucket)  # every row has its object, byte for byte
    async with ImageStore(tmp_path / "out-a", tmp_path / "db" / "store.sqlite3") as store:
        images, _ = await store.list_images()
        for summary in images:
            row = await store.get_image(summary.id)
            assert row is not None and _sha(objects[row.path.name]) == row.sha256
    # B's copies are copies, not orphans: doctor on B finds nothing to repair.
    env = _env(str(emulator.base_url), tmp_path, **s3_server.env(bucket),
               TTAPI_OUTPUT_DIR=str(tmp_path / "out-b"))
    checks = await _checks(env)
    for name in ("files w/o rows", "objects w/o rows", "rows w/o objects"):
        assert checks[name].detail == "none", (name, checks[name])


async def test_fetch_job_through_another_server_previews_from_the_bucket(
    emulator: Emulator, tmp_path: Path, s3_server: Any
) -> None:
    emulator.options.job_seconds = 0.2
    bucket = s3_server.bucket()
    a = _server(emulator, tmp_path, "out-a", s3_server, bucket)
    b = _server(emulator, tmp_path, "out-b", s3_server, bucket)
    async with mcp_client(a) as client:
        done = await client.call_tool("gpt4o_image", {"prompt": "a shared lantern"})
    assert not done.is_error, done.content
    job_id = done.structured_content["job_id"]
    async with mcp_client(b) as client:
        again = await client.call_tool("fetch_job", {"job_id": job_id})
    assert not again.is_error, again.content
    [image] = again.structured_content["images"]
    assert Path(image["path"]).parent == tmp_path / "out-b"
    assert Path(image["path"]).read_bytes() == s3_server.objects(bucket)[Path(image["path"]).name]
    assert [c.type for c in again.content].count("image") == 1  # the preview, from B's copy


async def test_the_row_comes_after_the_object_and_doctor_records_what_was_kept(
    emulator: Emulator, tmp_path: Path, s3_server: Any
) -> None:
    bucket = s3_server.bucket()
    down = {**_s3_settings(s3_server, bucket),
            "storage_endpoint": f"http://127.0.0.1:{_closed_port()}"}
    settings = make_server_settings(emulator.base_url, tmp_path, **down)
    async with mcp_client(settings) as client:
        failed = await client.call_tool("generate_image", {"prompt": "an unstored boat",
                                                           **DALLE2})
    text = " ".join(getattr(c, "text", "") for c in failed.content)
    assert failed.is_error or failed.structured_content["status"] != "completed", text
    kept = [p for p in (tmp_path / "out").iterdir() if p.suffix == ".png"]
    assert len(kept) == 1 and str(kept[0]) in text and "doctor --fix" in text
    assert s3_server.secret not in text and CANARY_KEY not in text
    async with ImageStore(tmp_path / "out", tmp_path / "db" / "store.sqlite3") as store:
        assert await store.count_images() == 0  # no row without its object

    env = _env(str(emulator.base_url), tmp_path, **s3_server.env(bucket))
    before = await _checks(env)
    assert before["files w/o rows"].status == "WARN"
    after = await _checks(env, fix=True)
    assert after["files w/o rows"].status == "OK" and "recorded 1" in after["files w/o rows"].detail
    assert s3_server.objects(bucket)[kept[0].name] == kept[0].read_bytes()
    assert (await _checks(env))["files w/o rows"].detail == "none"


async def test_doctor_checks_and_repairs_objects_and_rows(
    emulator: Emulator, tmp_path: Path, s3_server: Any, database_url: str | None
) -> None:
    bucket = s3_server.bucket()
    settings = _server(emulator, tmp_path, "out", s3_server, bucket)
    db = tmp_path / "db" / "store.sqlite3"
    async with ImageStore(tmp_path / "out", db, storage=shared_storage(settings),
                          database_url=database_url) as store:
        restorable = await store.save_image(_png((1, 2, 3)), model="m", prompt="restorable",
                                            parameters={})
        lost = await store.save_image(_png((4, 5, 6)), model="m", prompt="lost",
                                      parameters={})
        kept = await store.save_image(_png((7, 8, 9)), model="m", prompt="kept",
                                      parameters={})
        assert store.storage is not None
        await store.storage.delete(restorable.path.name)  # object gone, local copy kept
        await store.storage.delete(lost.path.name)
        lost.path.unlink()  # object and every copy gone
        orphan = _png((10, 11, 12))  # an object without a row (another replica's crash)
        await store.storage.put("20260101-000000_orphan_abcdefabcdef.png", orphan, "image/png")
        await store.storage.put("notes.txt", b"not an image", "text/plain")

    env = _env(str(emulator.base_url), tmp_path, **s3_server.env(bucket),
               **({"TTAPI_DATABASE_URL": database_url} if database_url else {}))
    shown = _doctor(env)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert s3_server.secret not in shown.stdout + shown.stderr
    checks = await _checks(env)
    assert checks["shared storage"].status == "OK"
    assert f"s3://{bucket}/team" in checks["shared storage"].detail
    assert checks["objects w/o rows"].status == "WARN" and "2 objects" in checks[
        "objects w/o rows"].detail
    assert checks["rows w/o objects"].status == "WARN" and "2 records" in checks[
        "rows w/o objects"].detail

    fixed = await _checks(env, fix=True)
    assert "recorded 1" in fixed["objects w/o rows"].detail
    assert "notes.txt" in fixed["objects w/o rows"].detail  # left alone, named
    assert "removed 1" in fixed["rows w/o objects"].detail
    assert "put back 1" in fixed["rows w/o objects"].detail
    objects = s3_server.objects(bucket)
    assert objects[restorable.path.name] == restorable.path.read_bytes()
    assert "notes.txt" in objects  # nothing deleted from the bucket
    async with ImageStore(tmp_path / "out", db, database_url=database_url) as store:
        ids = {s.id for s in (await store.list_images())[0]}
        assert {restorable.id, kept.id} <= ids and lost.id not in ids
        assert "abcdefabcdef" in ids  # the orphan, under the id in its name
    assert not (tmp_path / "out" / "notes.txt").exists()  # not copied in to be recorded
    again = await _checks(env)
    assert again["rows w/o objects"].detail == "none"
    assert again["objects w/o rows"].status == "WARN"  # only notes.txt is left


async def test_doctor_names_an_unreachable_bucket_without_its_secret(
    emulator: Emulator, tmp_path: Path, s3_server: Any
) -> None:
    env = _env(str(emulator.base_url), tmp_path, **{
        **s3_server.env("any-bucket"),
        "TTAPI_STORAGE_ENDPOINT": f"http://127.0.0.1:{_closed_port()}"})
    shown = _doctor(env)
    assert shown.returncode == 1
    assert "shared storage" in shown.stdout and "s3://any-bucket/team" in shown.stdout
    assert s3_server.secret not in shown.stdout + shown.stderr


async def test_partial_previews_are_shared_too(
    emulator: Emulator, tmp_path: Path, s3_server: Any
) -> None:
    bucket = s3_server.bucket()
    settings = _server(emulator, tmp_path, "out-a", s3_server, bucket)
    db_a = tmp_path / "a" / "store.sqlite3"
    db_b = tmp_path / "b" / "store.sqlite3"  # another machine: partials sit by the database
    data = _png((200, 100, 50), (32, 32))
    async with ImageStore(tmp_path / "out-a", db_a, storage=shared_storage(settings)) as a:
        await a.upsert_job("streamed-1", "generate", "p", "running")
        await a.save_partial("streamed-1", 0, 0, data)
    db_b.parent.mkdir()
    db_b.write_bytes(db_a.read_bytes())  # the same records, as PostgreSQL would share them
    async with ImageStore(tmp_path / "out-b", db_b, storage=shared_storage(settings)) as b:
        [partial] = await b.partials_for_job("streamed-1")
        assert not partial.path.exists() or partial.path.parent == db_a.parent / "partials"
        local = await b.local_partial(partial)
        assert local.parent == db_b.parent / "partials" and local.read_bytes() == data
        await b.storage.child("partials").delete(partial.path.name)  # type: ignore[union-attr]
        assert (await b.local_partial(partial)).read_bytes() == data  # its copy stays usable


async def test_readiness_checks_the_bucket(
    emulator: Emulator, tmp_path: Path, s3_server: Any
) -> None:
    bucket = s3_server.bucket()
    good = _server(emulator, tmp_path, "out", s3_server, bucket)
    with serve_http(good) as origin:
        ready = httpx2.get(f"{origin}/readyz", timeout=30)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["shared storage"] == "ok"
    bad = make_server_settings(emulator.base_url, tmp_path / "bad",
                               **{**_s3_settings(s3_server, bucket),
                                  "storage_endpoint": f"http://127.0.0.1:{_closed_port()}"})
    with serve_http(bad) as origin:
        down = httpx2.get(f"{origin}/readyz", timeout=60)
    assert down.status_code == 503
    assert down.json()["checks"]["shared storage"] != "ok"
    assert s3_server.secret not in down.text


def test_a_bad_storage_url_is_a_clear_configuration_error(tmp_path: Path) -> None:
    from ttapi_mcp.config import ConfigError, load_settings

    with pytest.raises(ConfigError) as caught:
        load_settings(env={"TTAPI_STORAGE_URL": "https://bucket/prefix",
                           "TTAPI_OUTPUT_DIR": str(tmp_path)})
    assert "storage_url" in str(caught.value) and "s3://bucket/prefix" in str(caught.value)


async def test_a_store_error_names_the_kept_file(tmp_path: Path, s3_server: Any) -> None:
    settings = make_server_settings(
        "http://127.0.0.1:9", tmp_path,
        **{**_s3_settings(s3_server, "no-such-bucket-here")})
    async with ImageStore(tmp_path / "out", tmp_path / "db.sqlite3",
                          storage=shared_storage(settings)) as store:
        with pytest.raises(StoreError) as caught:
            await store.save_image(_png((1, 1, 1)), model="m", prompt="p", parameters={})
        assert await store.count_images() == 0
    [kept] = (tmp_path / "out").glob("*.png")
    assert str(kept) in str(caught.value) and s3_server.secret not in str(caught.value)
    assert json.dumps(str(caught.value))  # a plain message


async def test_an_image_that_fails_its_check_is_neither_written_nor_sent(
    tmp_path: Path, s3_server: Any
) -> None:
    bucket = s3_server.bucket()
    settings = make_server_settings("http://127.0.0.1:9", tmp_path,
                                    **_s3_settings(s3_server, bucket))

    def truncated(data: bytes) -> None:
        raise ValueError("the image is cut short")

    async with ImageStore(tmp_path / "out", tmp_path / "db.sqlite3",
                          storage=shared_storage(settings)) as store:
        with pytest.raises(ValueError, match="cut short"):
            await store.save_image(_png((3, 3, 3)), model="m", prompt="p", parameters={},
                                   check=truncated)
        good = await store.save_image(_png((4, 4, 4)), model="m", prompt="p", parameters={})
        assert await store.count_images() == 1
    assert list(s3_server.objects(bucket)) == [good.path.name]
    assert [p.name for p in (tmp_path / "out").iterdir()] == [good.path.name]


async def test_concurrent_reads_of_a_missing_copy_share_one_download(
    emulator: Emulator, tmp_path: Path, s3_server: Any
) -> None:
    import anyio

    bucket = s3_server.bucket()
    settings = _server(emulator, tmp_path, "out-a", s3_server, bucket)
    db = tmp_path / "db.sqlite3"
    data = _png((90, 80, 70), (300, 200))
    async with ImageStore(tmp_path / "out-a", db, storage=shared_storage(settings)) as a:
        saved = await a.save_image(data, model="m", prompt="p", parameters={})
    got: list[bytes] = []
    async with ImageStore(tmp_path / "out-b", db, storage=shared_storage(settings)) as b:

        async def read() -> None:
            image = await b.local_image(saved)
            got.append(image.path.read_bytes())

        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(read)
    assert got == [data] * 6
    assert [p.name for p in (tmp_path / "out-b").iterdir()] == [saved.path.name]  # no temps


async def test_a_kept_copy_of_an_image_saved_again_is_not_recorded_twice(
    emulator: Emulator, tmp_path: Path, s3_server: Any
) -> None:
    bucket = s3_server.bucket()
    settings = _server(emulator, tmp_path, "out", s3_server, bucket)
    db = tmp_path / "db" / "store.sqlite3"
    data = _png((33, 44, 55))
    async with ImageStore(tmp_path / "out", db, storage=shared_storage(settings)) as store:
        saved = await store.save_image(data, model="m", prompt="retried", parameters={})
    kept = tmp_path / "out" / "20260101-000000_retried_aaaaaaaaaaaa.png"
    kept.write_bytes(data)  # the first attempt's file, kept when its upload failed
    env = _env(str(emulator.base_url), tmp_path, **s3_server.env(bucket))
    assert (await _checks(env))["files w/o rows"].status == "WARN"
    fixed = await _checks(env, fix=True)
    assert "recorded 0" in fixed["files w/o rows"].detail
    assert not kept.exists() and saved.path.read_bytes() == data
    async with ImageStore(tmp_path / "out", db) as store:
        assert await store.count_images() == 1
    assert list(s3_server.objects(bucket)) == [saved.path.name]
    assert (await _checks(env))["files w/o rows"].detail == "none"


async def test_an_http_endpoint_from_the_environment_works(
    tmp_path: Path, s3_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ttapi_mcp.storage import S3Options, open_storage

    bucket = s3_server.bucket()
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    storage = open_storage(f"s3://{bucket}/env", S3Options(
        region="us-east-1", access_key_id="test-key", secret_access_key=s3_server.secret))
    try:
        await storage.check()
        await storage.put("one.png", _png((1, 2, 3)), "image/png")
        assert await storage.names() == ["one.png"]
    finally:
        await storage.aclose()
    assert s3_server.secret not in repr(S3Options(secret_access_key=s3_server.secret))


def test_every_secret_is_scrubbed_from_the_logs(tmp_path: Path) -> None:
    import logging

    from ttapi_mcp.config import Settings
    from ttapi_mcp.logs import RedactSecrets

    settings = Settings(api_key=CANARY_KEY, output_dir=tmp_path,
                        storage_secret_access_key="s3-secret-canary-0123",
                        database_url="postgresql://ttapi:db-password-canary@db:5432/ttapi")
    scrub = RedactSecrets(settings.secret_values())
    record = logging.LogRecord("t", logging.WARNING, __file__, 1, "%s %s %s", (
        CANARY_KEY, "s3-secret-canary-0123", "db-password-canary"), None)
    scrub.filter(record)
    text = record.getMessage()
    for secret in (CANARY_KEY, "s3-secret-canary-0123", "db-password-canary"):
        assert secret not in text


def test_without_the_s3_client_the_server_refuses_to_start_and_says_what_to_install(
    tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    hide = ("import sys, importlib.abc\n"
            "class Hide(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'obstore' or name.startswith('obstore.'):\n"
            "            raise ModuleNotFoundError(name)\n"
            "sys.meta_path.insert(0, Hide())\n"
            "from ttapi_mcp.cli import main\n"
            "sys.exit(main(['serve']))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTAPI_")}
    env.update({"TTAPI_STORAGE_URL": "s3://team-images/ttapi", "TTAPI_API_KEY": CANARY_KEY,
                "TTAPI_OUTPUT_DIR": str(tmp_path / "out")})
    started = subprocess.run([sys.executable, "-c", hide], env=env, capture_output=True,
                             text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert started.returncode == 2, started.stderr
    assert "pip install 'ttapi-mcp[s3]'" in started.stderr and "Traceback" not in started.stderr
    doctor = subprocess.run([sys.executable, "-c", hide.replace("['serve']", "['doctor']")],
                            env=env, capture_output=True, text=True, timeout=60)
    assert doctor.returncode == 1 and "shared storage" in doctor.stdout, doctor.stderr
    assert "Traceback" not in doctor.stderr


async def test_a_save_that_doctor_recorded_first_keeps_one_row_with_the_saves_record(
    tmp_path: Path, s3_server: Any, database_url: str | None
) -> None:
    # doctor --fix on another replica may record an image between its upload and its row
    # (the file name holds the id); the save's own record then replaces doctor's.
    bucket = s3_server.bucket()
    settings = make_server_settings("http://127.0.0.1:9", tmp_path,
                                    **_s3_settings(s3_server, bucket))
    async with ImageStore(tmp_path / "out", tmp_path / "db.sqlite3", database_url=database_url,
                          storage=shared_storage(settings)) as store:
        saved = await store.save_image(_png((8, 9, 10)), model="gpt-image-1", prompt="raced",
                                       parameters={"size": "1024x1024"})
        await store._db.run(lambda c: c.execute("DELETE FROM images WHERE id = ?", (saved.id,)))
        recovered = await store.record_existing_file(saved.path)
        assert recovered is not None and recovered.id == saved.id  # the id in its name
        await store._insert(saved)  # the save's row, arriving late
        rows = await store._db.run(lambda c: c.execute(
            "SELECT id, prompt, model, parameters FROM images").fetchall())
    assert len(rows) == 1
    assert (rows[0]["prompt"], rows[0]["model"]) == ("raced", "gpt-image-1")
    assert "recovered" not in rows[0]["parameters"]


async def test_an_object_whose_bytes_are_recorded_under_another_name_goes(
    emulator: Emulator, tmp_path: Path, s3_server: Any
) -> None:
    bucket = s3_server.bucket()
    settings = _server(emulator, tmp_path, "out", s3_server, bucket)
    data = _png((61, 62, 63))
    async with ImageStore(tmp_path / "out", tmp_path / "db" / "store.sqlite3",
                          storage=shared_storage(settings)) as store:
        saved = await store.save_image(data, model="m", prompt="twice", parameters={})
        assert store.storage is not None
        await store.storage.put("20260101-000000_twice_bbbbbbbbbbbb.png", data, "image/png")
    env = _env(str(emulator.base_url), tmp_path, **s3_server.env(bucket))
    fixed = await _checks(env, fix=True)
    assert "recorded 0" in fixed["objects w/o rows"].detail
    assert list(s3_server.objects(bucket)) == [saved.path.name]  # the duplicate went
    assert (await _checks(env))["objects w/o rows"].detail == "none"  # settled in one run
