"""Turn an image reference from a tool call into a checked file on disk, ready to upload.

A reference is one of:

- an **absolute local path** (``~`` is expanded) inside an allowed input root. Relative
  paths are refused: the server's working directory is arbitrary (clients often start it
  in ``/``), so a relative path would silently mean different files on different setups.
  ``file://`` URIs are accepted and go through exactly the same checks as a path.
  The path is resolved (symlinks followed, strictly) *before* the root check, and the
  roots are resolved too, so ``..`` and symlinks cannot escape. Only regular files: the
  type is checked with ``stat`` before opening, and the file is then opened non-blocking
  and checked again on the open handle, so a FIFO or device is never read;
- ``ttapi://images/{id}``: an image this server saved;
- ``data:image/...;base64,...``: decoded (size checked before decoding) into a temp file;
- an **http(s) URL**: fetched under the URL policy (:mod:`.urlfetch`) into a temp file.

In every case the format comes from the bytes (PNG, JPEG or WebP) and the declared pixel
count from the header is bounded, so a small file declaring a huge image (a decompression
bomb) is refused before anything decodes it.

Residual risk: uploads re-open the path later; someone able to write inside an allowed
root could swap the file in between. Roots should be folders only the user controls.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Literal

import anyio
import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field

from .filenames import new_short_id, prompt_slug, safe_child, temp_filename
from .imagefacts import ACCEPTED_FORMATS_TEXT, ImageFacts, sniff_file
from .store import ImageStore
from .store.files import sweep_temp_files
from .store.models import IMAGE_URI_PREFIX, StoreError
from .urlfetch import URLFetchError, fetch_url_to_file

__all__ = [
    "InputError",
    "InputImage",
    "InputPolicy",
    "cleanup_inputs",
    "cleanup_temp_dir",
    "resolve_image_ref",
]

Role = Literal["image", "mask"]
Source = Literal["file", "resource", "data", "url"]
DEFAULT_MAX_PIXELS = 64_000_000
_CHUNK = 1 << 20
_SPECIAL_ROOTS = (("proc",), ("sys",), ("dev",))


class InputError(ValueError):
    """An image reference that cannot be used; the message says what is allowed instead."""


class InputPolicy(BaseModel):
    """Where image inputs may come from and how big they may be."""

    roots: list[Path] = Field(description="Absolute folders local paths must be inside.")
    max_bytes: int = Field(gt=0, description="Largest accepted input image, in bytes.")
    temp_dir: Path = Field(description="Where decoded and downloaded inputs are kept briefly.")
    allow_urls: bool = True
    allow_private_urls: bool = False
    url_timeout: float = Field(30.0, gt=0)
    max_redirects: int = Field(5, ge=0, le=20)
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, gt=0, description="Decompression-bomb bound.")
    allow_paths: bool = Field(True, description="False for signed-in users: the server's "
                              "files are not theirs to name (other users' images sit there).")

    @classmethod
    def for_output_dir(
        cls, output_dir: Path, input_roots: list[Path] | None = None, **options: object
    ) -> InputPolicy:
        """The default: the output folder plus configured roots; temp files in .incoming."""
        roots = [output_dir, *(input_roots or [])]
        return cls(roots=roots, temp_dir=output_dir / ".incoming", **options)  # type: ignore[arg-type]


class InputImage(BaseModel):
    """A checked image file ready to upload; delete it after use if ``is_temporary``."""

    model_config = ConfigDict(frozen=True)

    path: Path
    filename: str = Field(description="A safe name with the real extension, for the upload.")
    facts: ImageFacts
    sha256: str
    source: Source
    is_temporary: bool


def _short(ref: str) -> str:
    return ref if len(ref) <= 100 else ref[:97] + "..."


def _fail(ref: str, problem: str) -> InputError:
    return InputError(f"image reference {_short(ref)!r}: {problem}")


async def resolve_image_ref(
    ref: str, *, role: Role, policy: InputPolicy, store: ImageStore
) -> InputImage:
    """Resolve one reference to a checked file (see the module docstring for the forms)."""
    text = ref.strip()
    lowered = text[:16].lower()
    if not text:
        raise InputError(f"empty {role} reference: {_accepted_forms(policy)}")
    if lowered.startswith(IMAGE_URI_PREFIX):
        return await _from_resource(ref, text, role, policy, store)
    if lowered.startswith("data:"):
        return await _from_data_uri(ref, text, role, policy)
    if lowered.startswith(("http://", "https://")):
        return await _from_url(ref, text, role, policy)
    if lowered.startswith("file:"):
        return await _from_path(ref, _file_uri_path(ref, text), role, policy)
    if "://" in text[:20]:
        raise _fail(ref, f"unsupported scheme; {_accepted_forms(policy)}")
    return await _from_path(ref, text, role, policy)


def _accepted_forms(policy: InputPolicy) -> str:
    roots = ", ".join(str(r) for r in policy.roots)
    urls = "an http(s) URL" if policy.allow_urls else "(URLs are disabled: allow_url_inputs)"
    return (
        f"use an absolute path inside {roots}, a ttapi://images/<id> URI, a"
        f" data:image/png;base64,... URI, or {urls}"
    )


def _file_uri_path(ref: str, text: str) -> str:
    parsed = urllib.parse.urlsplit(text)
    if parsed.netloc not in ("", "localhost"):
        raise _fail(ref, "file:// URIs must name a local file (no host)")
    return urllib.request.url2pathname(parsed.path)


# -- local files ---------------------------------------------------------------------------


async def _from_path(ref: str, text: str, role: Role, policy: InputPolicy) -> InputImage:
    if not policy.allow_paths:
        raise _fail(ref, "a signed-in user cannot name files on the server; pass a"
                    " ttapi://images/<id> URI of your own image, an https URL or base64 data")
    if text.endswith(("/", "\\")) or text.endswith(os.sep + "."):
        raise _fail(ref, "names a folder, not a file")
    if "\x00" in text:
        raise _fail(ref, "contains a NUL character")
    try:
        path = Path(text).expanduser()
    except RuntimeError:  # "~name/..." for a user this system does not know
        raise _fail(ref, "starts with '~' but names no known user's home folder") from None
    if not path.is_absolute():
        raise _fail(ref, f"relative paths are not accepted; {_accepted_forms(policy)}")
    resolved = await anyio.to_thread.run_sync(_resolve_inside_roots, ref, path, policy)
    return await anyio.to_thread.run_sync(_check_file, ref, resolved, role, policy, "file", False)


def _resolve_inside_roots(ref: str, path: Path, policy: InputPolicy) -> Path:
    try:
        resolved = path.resolve(strict=True)
    except FileNotFoundError:
        raise _fail(ref, "no such file") from None
    except (OSError, RuntimeError) as exc:  # RuntimeError: symlink loop
        raise _fail(ref, f"cannot be resolved ({type(exc).__name__})") from None
    if not any(_is_within(resolved, root) for root in policy.roots):
        raise _fail(ref, f"is outside the allowed input folders; {_accepted_forms(policy)}")
    return resolved


def _is_within(path: Path, root: Path) -> bool:
    """True if ``path`` (resolved) is ``root`` or below it, comparing real files.

    Comparing ``stat`` identities of the parents, not strings, also gets case-insensitive
    file systems right (``/Users/a/OUT`` and ``/Users/a/out`` are the same folder).
    """
    try:
        real_root = root.expanduser().resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    if path.is_relative_to(real_root):
        return True
    try:
        root_stat = real_root.stat()
    except OSError:
        return False
    for parent in path.parents:
        try:
            if os.path.samestat(parent.stat(), root_stat):
                return True
        except OSError:
            return False
    return False


def _check_file(
    ref: str, path: Path, role: Role, policy: InputPolicy, source: Source, temporary: bool
) -> InputImage:
    """Regular file, size, format and pixel bound, then hash; runs in a worker thread."""
    if sys.platform != "win32" and path.parts[1:2] in _SPECIAL_ROOTS:
        raise _fail(ref, "system files under /proc, /sys or /dev are never read")
    try:
        before = os.stat(path)
    except OSError as exc:
        raise _fail(ref, f"cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(before.st_mode):
        raise _fail(ref, f"is {_kind(before.st_mode)}, not a regular file")
    _check_size(ref, before.st_size, policy)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise _fail(ref, f"cannot be opened ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        now = os.fstat(f.fileno())
        if not stat.S_ISREG(now.st_mode) or not os.path.samestat(before, now):
            raise _fail(ref, "changed while being checked; try again")
        # Sniff through this very handle where the OS allows it, so a file swapped after
        # the check cannot be read instead.
        handle_path = Path(f"/proc/self/fd/{f.fileno()}")
        facts = sniff_file(handle_path if handle_path.exists() else path)
        f.seek(0)
        _check_facts(ref, facts, role, policy)
        digest = hashlib.sha256()
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    stem = prompt_slug(path.stem) if source == "file" else role
    name = f"{stem}.{facts.extension}"
    return InputImage(
        path=path,
        filename=name,
        facts=facts,
        sha256=digest.hexdigest(),
        source=source,
        is_temporary=temporary,
    )


def _kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "a special file")


def _check_size(ref: str, size: int, policy: InputPolicy) -> None:
    if size > policy.max_bytes:
        raise _fail(
            ref, f"is {size} bytes; the limit is {policy.max_bytes} bytes (max_input_bytes)"
        )
    if size == 0:
        raise _fail(ref, "is empty")


def _check_facts(ref: str, facts: ImageFacts, role: Role, policy: InputPolicy) -> None:
    if facts.format is None:
        raise _fail(
            ref,
            f"is not an accepted image format (the bytes look like {facts.detected});"
            f" a {role} must be {ACCEPTED_FORMATS_TEXT}",
        )
    if not facts.width or not facts.height:
        raise _fail(ref, f"its {facts.format.upper()} header gives no width and height")
    if facts.pixels > policy.max_pixels:
        raise _fail(
            ref,
            f"declares {facts.width}x{facts.height} pixels, more than the limit of"
            f" {policy.max_pixels} pixels; use a smaller image",
        )


# -- store resources -----------------------------------------------------------------------


async def _from_resource(
    ref: str, text: str, role: Role, policy: InputPolicy, store: ImageStore
) -> InputImage:
    image_id = text[len(IMAGE_URI_PREFIX) :]
    image = await store.get_image(image_id) if image_id.isalnum() else None
    if image is None:
        raise _fail(ref, "no saved image has this id; list the ttapi://images resources")
    try:
        image = await store.local_image(image)
        return await anyio.to_thread.run_sync(
            _check_file, ref, image.path, role, policy, "resource", False
        )
    except (InputError, StoreError) as exc:
        raise _fail(ref, f"the saved file {image.path} can no longer be used: {exc}") from None


# -- data URIs and URLs --------------------------------------------------------------------


async def _from_data_uri(ref: str, text: str, role: Role, policy: InputPolicy) -> InputImage:
    header, sep, payload = text.partition(",")
    if not sep or not header.lower().endswith(";base64"):
        raise _fail(ref, "only base64 data URIs are accepted: data:image/png;base64,<data>")
    if not header[5:].lower().startswith("image/"):
        raise _fail(ref, "a data URI must declare an image type, e.g. data:image/png;base64,")
    compact = "".join(payload.split())
    if len(compact) * 3 // 4 > policy.max_bytes + 2:
        raise _fail(ref, f"decodes to more than the limit of {policy.max_bytes} bytes")
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise _fail(ref, "the base64 data is not valid") from None
    _check_size(ref, len(data), policy)
    tmp = await anyio.to_thread.run_sync(_write_temp, policy.temp_dir, data)
    return await _checked_temp(ref, tmp, role, policy, "data")


async def _from_url(ref: str, text: str, role: Role, policy: InputPolicy) -> InputImage:
    if not policy.allow_urls:
        raise _fail(
            ref,
            "URL inputs are disabled (allow_url_inputs is false); pass a local path,"
            " a ttapi://images/<id> URI or a data URI",
        )
    try:
        tmp = await fetch_url_to_file(
            text,
            policy.temp_dir,
            max_bytes=policy.max_bytes,
            timeout=policy.url_timeout,
            allow_private=policy.allow_private_urls,
            max_redirects=policy.max_redirects,
        )
    except URLFetchError as exc:
        raise InputError(str(exc)) from None
    return await _checked_temp(ref, tmp, role, policy, "url")


async def _checked_temp(
    ref: str, tmp: Path, role: Role, policy: InputPolicy, source: Source
) -> InputImage:
    try:
        return await anyio.to_thread.run_sync(_check_file, ref, tmp, role, policy, source, True)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_temp(temp_dir: Path, data: bytes) -> Path:
    temp_dir.mkdir(parents=True, exist_ok=True)
    path = safe_child(temp_dir, temp_filename(f"input-{new_short_id()}"))
    with open(path, "xb") as f:
        f.write(data)
    return path


async def cleanup_inputs(images: list[InputImage]) -> None:
    """Delete the temporary files among ``images`` (call after the upload, success or not)."""
    with anyio.CancelScope(shield=True):
        for image in images:
            if image.is_temporary:
                await anyio.to_thread.run_sync(image.path.unlink, True)


async def cleanup_temp_dir(temp_dir: Path, max_age: float = 900.0) -> list[Path]:
    """Remove leftover temp inputs (owner process gone, or older than ``max_age`` s)."""
    if not temp_dir.is_dir():
        return []
    return await anyio.to_thread.run_sync(sweep_temp_files, temp_dir, max_age)
