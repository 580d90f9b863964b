"""Image references: every accepted form and every refusal, with real files and servers."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import struct
import sys
import threading
import zlib
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
import pytest
from PIL import Image

from ttapi_mcp.inputs import (
    InputError,
    InputPolicy,
    cleanup_inputs,
    cleanup_temp_dir,
    resolve_image_ref,
)
from ttapi_mcp.store import ImageStore


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (8, 6)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA" if fmt == "PNG" else "RGB", size).save(buf, fmt)
    return buf.getvalue()


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny but well-formed PNG whose IHDR declares a huge image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ImageStore]:
    async with ImageStore(tmp_path / "out", tmp_path / "out" / ".db" / "s.sqlite3") as s:
        yield s


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "inputs"
    folder.mkdir()
    return folder


@pytest.fixture
def policy(store: ImageStore, root: Path) -> InputPolicy:
    return InputPolicy.for_output_dir(store.output_dir, [root], max_bytes=4096)


async def resolve(ref: str, policy: InputPolicy, store: ImageStore, role: str = "image"):
    with anyio.fail_after(5):
        return await resolve_image_ref(ref, role=role, policy=policy, store=store)  # type: ignore[arg-type]


# -- accepted forms ------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(("fmt", "ext"), [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp")])
async def test_local_file_accepted(fmt, ext, root, policy, store) -> None:
    data = image_bytes(fmt, (9, 7))
    path = root / "My Photo.bin"  # the name says nothing; the bytes decide
    path.write_bytes(data)
    image = await resolve(str(path), policy, store)
    assert image.path == path.resolve() and not image.is_temporary and image.source == "file"
    assert image.facts.format == fmt.lower() and (image.facts.width, image.facts.height) == (9, 7)
    assert image.filename == f"my-photo.{ext}"
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    assert (await resolve(path.as_uri(), policy, store)).path == image.path  # file:// URI


@pytest.mark.anyio
async def test_tilde_and_symlink_inside_root(root, policy, store, monkeypatch) -> None:
    (root / "a.png").write_bytes(image_bytes())
    (root / "link.png").symlink_to(root / "a.png")
    monkeypatch.setenv("HOME", str(root))
    assert (await resolve("~/a.png", policy, store)).path == (root / "a.png").resolve()
    assert (await resolve(str(root / "link.png"), policy, store)).path == (root / "a.png").resolve()


@pytest.mark.anyio
async def test_ttapi_uri(policy, store) -> None:
    saved = await store.save_image(image_bytes("WEBP"), model="m", prompt="p", parameters={})
    image = await resolve(saved.uri, policy, store, role="mask")
    assert image.path == saved.path and image.source == "resource" and image.sha256 == saved.sha256
    assert image.filename == "mask.webp"
    for ref in ("ttapi://images/doesnotexist", "ttapi://images/../../etc/passwd"):
        with pytest.raises(InputError, match="no saved image has this id"):
            await resolve(ref, policy, store)
    saved.path.unlink()
    with pytest.raises(InputError, match="can no longer be used"):
        await resolve(saved.uri, policy, store)


@pytest.mark.anyio
async def test_data_uri(policy, store) -> None:
    data = image_bytes("JPEG")
    uri = "data:image/jpeg;base64," + base64.b64encode(data).decode()
    image = await resolve(uri, policy, store)
    assert image.is_temporary and image.source == "data" and image.path.read_bytes() == data
    assert image.path.parent == policy.temp_dir and image.facts.format == "jpeg"
    await cleanup_inputs([image])
    assert not image.path.exists()
    declared_wrong = "data:image/gif;base64," + base64.b64encode(image_bytes("PNG")).decode()
    assert (await resolve(declared_wrong, policy, store)).facts.format == "png"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("data:image/png;base64,@@@not base64@@@", "not valid"),
        (
            "data:image/png;base64," + base64.b64encode(b"plain text here").decode(),
            "not an accepted image format",
        ),
        ("data:image/png;base64," + "A" * 8000, "more than the limit of 4096 bytes"),
        ("data:text/plain;base64,aGVsbG8=", "must declare an image type"),
        ("data:image/png,rawdata", "only base64 data URIs"),
        ("data:image/png;base64,", "is empty"),
    ],
)
async def test_bad_data_uris(uri, message, policy, store) -> None:
    with pytest.raises(InputError, match=message):
        await resolve(uri, policy, store)
    assert not policy.temp_dir.exists() or [p for p in policy.temp_dir.iterdir()] == []


# -- refusals: where ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_outside_roots_refused(tmp_path, root, policy, store) -> None:
    outside = tmp_path / "secret.png"
    outside.write_bytes(image_bytes())
    (root / "escape.png").symlink_to(outside)
    (root / "sub").mkdir()
    refs = [
        str(outside),
        f"{root}/../secret.png",
        f"{root}/sub/../../secret.png",
        str(root / "escape.png"),
        outside.as_uri(),
    ]
    for ref in refs:
        with pytest.raises(InputError, match="outside the allowed input folders"):
            await resolve(ref, policy, store)


@pytest.mark.anyio
async def test_relative_and_odd_forms_refused(root, policy, store) -> None:
    (root / "a.png").write_bytes(image_bytes())
    cases = {
        "a.png": "relative paths are not accepted",
        f"{root}/a.png/": "names a folder",
        f"{root}/missing.png": "no such file",
        "ftp://example.com/a.png": "unsupported scheme",
        "file://otherhost/etc/passwd": "no host",
        "": "empty image reference",
        f"{root}/a\x00.png": "NUL",
    }
    for ref, message in cases.items():
        with pytest.raises(InputError, match=message):
            await resolve(ref, policy, store)


# -- refusals: what ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_fifo_refused_without_hanging(root, policy, store) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    fifo = root / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="FIFO"):
        await resolve(str(fifo), policy, store)


@pytest.mark.anyio
async def test_devices_directories_and_proc_refused(root, store) -> None:
    if sys.platform == "win32":
        pytest.skip("POSIX special files")
    wide = InputPolicy(roots=[Path("/")], max_bytes=4096, temp_dir=root / ".incoming")
    (root / "folder.png").mkdir()
    cases = {
        "/dev/zero": "never read",
        "/proc/self/environ": "never read",
        str(root / "folder.png"): "a folder, not a regular file",
    }
    for ref, message in cases.items():
        with pytest.raises(InputError, match=message):
            await resolve(ref, wide, store)


@pytest.mark.anyio
async def test_too_large_refused_before_reading(root, policy, store) -> None:
    big = root / "big.png"
    big.write_bytes(image_bytes() + b"\0" * 5000)
    with pytest.raises(InputError, match="the limit is 4096 bytes"):
        await resolve(str(big), policy, store)


@pytest.mark.anyio
async def test_wrong_formats_refused(root, policy, store) -> None:
    gif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(gif, "GIF")
    bmp = io.BytesIO()
    Image.new("RGB", (4, 4)).save(bmp, "BMP")
    tiff = io.BytesIO()
    Image.new("RGB", (4, 4)).save(tiff, "TIFF")
    files = {
        "anim.png": (gif.getvalue(), "gif"),
        "pic.png": (bmp.getvalue(), "bmp"),
        "scan.png": (tiff.getvalue(), "tiff"),
        "vector.png": (b'<svg xmlns="http://www.w3.org/2000/svg"></svg>', "svg"),
        "notes.png": (b"just some text in a file named png\n", "unknown"),
    }
    for name, (data, detected) in files.items():
        (root / name).write_bytes(data)
        with pytest.raises(InputError, match=f"look like {detected}.*PNG, JPEG or WebP"):
            await resolve(str(root / name), policy, store)


@pytest.mark.anyio
async def test_decompression_bomb_refused_from_header(root, policy, store) -> None:
    path = root / "bomb.png"
    path.write_bytes(bomb_png())
    assert path.stat().st_size < 200
    with pytest.raises(InputError, match="declares 100000x100000 pixels"):
        await resolve(str(path), policy, store)
    uri = "data:image/png;base64," + base64.b64encode(bomb_png()).decode()
    with pytest.raises(InputError, match="declares 100000x100000"):
        await resolve(uri, policy, store)
    assert [p for p in policy.temp_dir.iterdir()] == []


@pytest.mark.anyio
async def test_cleanup_temp_dir(policy) -> None:
    policy.temp_dir.mkdir(parents=True)
    stale = policy.temp_dir / ".input-abc.999999999.tmp"  # owner process long gone
    stale.write_bytes(b"x")
    assert await cleanup_temp_dir(policy.temp_dir) == [stale]


# -- URLs ----------------------------------------------------------------------------------

PNG = image_bytes("PNG", (10, 10))


class _Handler(BaseHTTPRequestHandler):
    hits = 0

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        _Handler.hits += 1
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(PNG)))
        self.end_headers()
        self.wfile.write(PNG)


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    _Handler.hits = 0
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/x.png"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.mark.anyio
async def test_url_policy(server, policy, store) -> None:
    with pytest.raises(InputError, match="loopback.*allow_private_urls"):
        await resolve(server, policy, store)
    closed = policy.model_copy(update={"allow_urls": False, "allow_private_urls": True})
    with pytest.raises(InputError, match="URL inputs are disabled"):
        await resolve(server, closed, store)
    assert _Handler.hits == 0
    opened = policy.model_copy(update={"allow_private_urls": True})
    image = await resolve(server, opened, store)
    assert image.source == "url" and image.is_temporary and image.path.read_bytes() == PNG
    assert image.path.parent == policy.temp_dir and image.facts.width == 10
    await cleanup_inputs([image])
    assert not image.path.exists()
