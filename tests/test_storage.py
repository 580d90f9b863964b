"""The image-bytes storage interface: one suite run against both backends.

The local folder writes through the store's own atomic writer; the S3 backend (obstore)
talks to moto's standalone S3 server, a real HTTP server on 127.0.0.1 started here.
"""

from __future__ import annotations

import hashlib
import secrets
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx2
import pytest

from ttapi_mcp.storage import ImageStorage, LocalFolder, S3Options, StorageError, open_storage

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "ttapi-images"
SECRET = f"s3-canary-{secrets.token_hex(10)}"
PNG_HEAD = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a loopback port, with one bucket."""
    from moto.server import ThreadedMotoServer  # the dev extra installs it: never skipped

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    assert httpx2.put(f"{endpoint}/{BUCKET}", timeout=10).status_code == 200
    try:
        yield endpoint
    finally:
        server.stop()


def s3_options(endpoint: str, **extra: object) -> S3Options:
    values: dict[str, object] = dict(endpoint=endpoint, region="us-east-1",
                                     access_key_id="test-key", secret_access_key=SECRET,
                                     timeout_seconds=10, max_retries=1)
    values.update(extra)
    return S3Options(**values)  # type: ignore[arg-type]


@pytest.fixture(params=["local", "s3"])
async def storage(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[ImageStorage]:
    if request.param == "local":
        backend = open_storage(tmp_path / "images")
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        prefix = f"run-{secrets.token_hex(4)}"  # each test its own corner of the bucket
        backend = open_storage(f"s3://{BUCKET}/{prefix}", s3_options(endpoint))
    try:
        yield backend
    finally:
        await backend.aclose()


def image_bytes(size: int) -> bytes:
    return PNG_HEAD + secrets.token_bytes(size - len(PNG_HEAD))


@pytest.mark.anyio
async def test_put_read_size_list_delete(storage: ImageStorage) -> None:
    data = image_bytes(200_000)
    await storage.put("2026-12-03-owl-abc123.png", data, "image/png")
    await storage.put("2026-12-03-heron-def456.png", image_bytes(1000), "image/png")
    assert await storage.read("2026-12-03-owl-abc123.png") == data
    assert await storage.size("2026-12-03-owl-abc123.png") == len(data)
    assert await storage.names() == ["2026-12-03-heron-def456.png",
                                     "2026-12-03-owl-abc123.png"]
    replaced = image_bytes(500)
    await storage.put("2026-12-03-owl-abc123.png", replaced, "image/png")
    assert await storage.read("2026-12-03-owl-abc123.png") == replaced
    assert await storage.delete("2026-12-03-owl-abc123.png") is True
    assert await storage.delete("2026-12-03-owl-abc123.png") is False
    assert await storage.size("2026-12-03-owl-abc123.png") is None
    assert await storage.names() == ["2026-12-03-heron-def456.png"]


@pytest.mark.anyio
async def test_reads_stream_in_bounded_chunks(storage: ImageStorage) -> None:
    data = image_bytes(1_000_000)
    await storage.put("big.png", data, "image/png")
    chunks = [chunk async for chunk in storage.stream("big.png", chunk_size=64 * 1024)]
    assert b"".join(chunks) == data
    assert len(chunks) >= 4  # not one buffer of the whole object


@pytest.mark.anyio
async def test_a_failing_check_before_commit_stores_nothing(
    storage: ImageStorage, tmp_path: Path
) -> None:
    def truncated() -> None:
        raise ValueError("the image is truncated")

    await storage.put("kept.png", image_bytes(100), "image/png")
    with pytest.raises(ValueError, match="truncated"):
        await storage.put("kept.png", image_bytes(300), "image/png", before_commit=truncated)
    with pytest.raises(ValueError):
        await storage.put("never.png", image_bytes(300), "image/png", before_commit=truncated)
    assert await storage.size("kept.png") == 100  # the old bytes, untouched
    assert await storage.size("never.png") is None
    assert await storage.names() == ["kept.png"]
    if isinstance(storage, LocalFolder):
        assert sorted(p.name for p in storage.folder.iterdir()) == ["kept.png"]  # no temp


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["../escape.png", ".hidden.png", "a/b.png", "", "x" * 300,
                                  "sp ace.png", "..", "/abs.png"])
async def test_unsafe_names_are_refused(storage: ImageStorage, name: str) -> None:
    with pytest.raises(StorageError, match="not a storable image name"):
        await storage.put(name, image_bytes(100), "image/png")
    with pytest.raises(StorageError):
        await storage.read(name)
    assert await storage.names() == []


@pytest.mark.anyio
async def test_missing_objects_are_told_plainly(storage: ImageStorage) -> None:
    with pytest.raises(StorageError, match="gone.png"):
        await storage.read("gone.png")
    assert await storage.size("gone.png") is None


@pytest.mark.anyio
async def test_the_readiness_probe_leaves_nothing(storage: ImageStorage) -> None:
    if isinstance(storage, LocalFolder):
        with pytest.raises(StorageError, match="cannot write"):
            await storage.check()  # the folder is not there: reported, not created
        assert not storage.folder.exists()
        storage.folder.mkdir()
    await storage.check()
    assert await storage.names() == []
    if isinstance(storage, LocalFolder):
        assert list(storage.folder.iterdir()) == []


# -- S3 specifics --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_s3_objects_carry_their_type_and_a_large_one_survives_multipart(
    s3_endpoint: str
) -> None:
    prefix = f"run-{secrets.token_hex(4)}"
    bucket = open_storage(f"s3://{BUCKET}/{prefix}/", s3_options(s3_endpoint))
    data = image_bytes(12 * 1024 * 1024)  # above the 5 MiB part size
    await bucket.put("large.png", data, "image/png")
    head = httpx2.head(f"{s3_endpoint}/{BUCKET}/{prefix}/large.png", timeout=10)
    assert head.status_code == 200 and head.headers["content-type"] == "image/png"
    read = await bucket.read("large.png")
    assert hashlib.sha256(read).hexdigest() == hashlib.sha256(data).hexdigest()
    assert bucket.describe() == f"s3://{BUCKET}/{prefix}"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.anyio
async def test_an_unreachable_s3_service_fails_clearly_without_the_secret() -> None:
    bucket = open_storage(f"s3://{BUCKET}/x",
                          s3_options(f"http://127.0.0.1:{_closed_port()}", max_retries=0))
    with pytest.raises(StorageError) as failed:
        await bucket.put("one.png", image_bytes(100), "image/png")
    with pytest.raises(StorageError) as checked:
        await bucket.check()
    for error in (failed.value, checked.value):
        assert f"s3://{BUCKET}/x" in str(error) and SECRET not in str(error)
    assert SECRET not in bucket.describe() and SECRET not in repr(bucket)


def test_locations_choose_the_backend(tmp_path: Path) -> None:
    assert isinstance(open_storage(tmp_path), LocalFolder)
    assert open_storage(f"file://{tmp_path}").folder == tmp_path  # type: ignore[attr-defined]
    assert open_storage("s3://bucket/team/images").describe() == "s3://bucket/team/images"
    for bad in ("gs://bucket/x", "ftp://host/x"):
        with pytest.raises(StorageError, match="s3://bucket/prefix"):
            open_storage(bad)
    with pytest.raises(StorageError, match="names no bucket"):
        open_storage("s3:///prefix-only")


def test_the_s3_client_loads_only_for_s3() -> None:
    script = ("import sys, tempfile\n"
              "from ttapi_mcp.storage import open_storage\n"
              "open_storage(tempfile.mkdtemp())\n"
              "print('obstore' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=str(ROOT))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
