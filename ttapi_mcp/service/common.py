"""Shared pieces of the service layer: the dependencies, errors, progress, saving.

Every user action goes through the same steps: validate against the catalog, resolve
inputs, call TTAPI, save each image the moment it arrives, describe the result. The
helpers here hold the parts that do not depend on which action it is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from ttapi_mcp.api import ImagesResponse, TTAPIClient, TTAPIError
from ttapi_mcp.api.b64values import B64Text, decode_base64
from ttapi_mcp.catalog import Violation
from ttapi_mcp.config import Settings
from ttapi_mcp.filenames import safe_child, temp_filename
from ttapi_mcp.previews import Preview, start_preview
from ttapi_mcp.store import ImageStore, StoredImage, StoreError

from .balance import BalanceCache
from .results import MissingImage, SavedImage

if TYPE_CHECKING:
    from .runner import JobRunner

log = logging.getLogger("ttapi_mcp.service")

ProgressFn = Callable[[float, float | None, str], Awaitable[None]]
"""``progress(done, total, message)``: how a caller learns what a long call is doing."""

URL_TTL_SECONDS = 3600.0
"""TTAPI result URLs are assumed to expire after 60 minutes (the contract's E1 rule)."""

NO_KEY_MESSAGE = (
    "No TTAPI API key is configured, so nothing can be sent to TTAPI. Set the environment "
    'variable TTAPI_API_KEY in this MCP server\'s configuration (the "env" block of the '
    'server entry in your MCP client), or add "api_key": "<your key>" to the JSON config '
    "file (passed with --config or TTAPI_MCP_CONFIG), then restart the server."
)


class ServiceError(Exception):
    """A failure the caller can act on; the text is complete and safe to show."""


class MissingKeyError(ServiceError):
    """No key is configured; the server layer says which client file to edit."""


async def no_progress(done: float, total: float | None, message: str) -> None:
    """Default progress sink for callers that do not report progress."""


@dataclass
class Services:
    """What every action needs, owned by the server's lifespan."""

    settings: Settings
    store: ImageStore
    client: TTAPIClient | None
    runner: JobRunner | None = None
    """Background jobs; None only outside a running server (then calls run inline)."""
    hook_base_url: str | None = None
    """Set in HTTP mode with ``public_base_url``: gpt4o_image jobs are given a hook URL here."""
    clock: Callable[[], float] = time.time
    """Wall-clock time for budgets (day and month periods); tests move it."""
    balance: BalanceCache = field(default_factory=lambda: BalanceCache())
    """The TTAPI balance as last read (see :mod:`.balance`)."""
    _job_locks: dict[str, anyio.Lock] = field(default_factory=dict)

    def job_lock(self, job_id: str) -> anyio.Lock:
        """One lock per job, so concurrent fetches download its image only once."""
        return self._job_locks.setdefault(job_id, anyio.Lock())

    def require_runner(self) -> JobRunner:
        if self.runner is None:
            raise RuntimeError("background jobs need a running server (its lifespan owns them)")
        return self.runner

    def require_client(self) -> TTAPIClient:
        if self.client is None:
            raise MissingKeyError(NO_KEY_MESSAGE)
        return self.client


def image_uri(image_id: str) -> str:
    return f"ttapi://images/{image_id}"


def violations_error(violations: list[Violation], others: Sequence[str] = ()) -> ServiceError:
    """All broken rules in one message, so the caller fixes its call in one go."""
    lines = [f"- {o}" for o in others] + [f"- {_named(v)}" for v in violations]
    head = "The request was not sent (nothing was billed): "
    head += "1 problem." if len(lines) == 1 else f"{len(lines)} problems."
    return ServiceError("\n".join([head, *lines]))


def _named(violation: Violation) -> str:
    """The message, led by the parameter's name unless it already starts with it."""
    text = str(violation)
    return text if text.startswith(violation.param) else f"{violation.param}: {text}"


def upstream_error(exc: TTAPIError) -> ServiceError:
    return ServiceError(str(exc))


def iso_utc(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="seconds")


async def readable(services: Services, image: StoredImage) -> StoredImage:
    """``image`` as a file of this server (an image another replica saved is fetched from
    the shared storage); unchanged, with a warning, when that fails: the answer still
    names it and its resource, only the preview is missing."""
    try:
        return await services.store.local_image(image)
    except StoreError as exc:
        log.warning("image %s has no readable copy here: %s", image.id, exc)
        return image


def to_saved(image: StoredImage, index: int) -> SavedImage:
    return SavedImage(
        index=index,
        id=image.id,
        path=str(image.path),
        uri=image_uri(image.id),
        mime=image.mime,
        width=image.width,
        height=image.height,
        bytes=image.bytes,
        source_url=image.source_url,
        url_expires_at=iso_utc(image.url_expires_at),
        revised_prompt=image.revised_prompt,
    )


def _decode_b64(
    text: str | B64Text, preview_edge: int | None
) -> tuple[bytes, Future[Preview] | None]:
    """Strict decode; with ``preview_edge`` the thumbnail starts from the decoded bytes.

    Whether the image is whole is checked by the store while it writes the file
    (:func:`_verify_image`); a broken image only makes the thumbnail fail too. The
    base64 text is released once decoded, so a one-image answer's body is freed before
    the thumbnail decodes its pixels (body, bytes and pixels were the call's peak).
    """
    data = decode_base64(text)
    if isinstance(text, B64Text):
        text.release()  # the received body need not outlive its images' decoding
    return data, start_preview(data, preview_edge) if preview_edge else None


def _verify_image(data: bytes) -> None:
    """Check that an image is whole, without decoding its pixels where the format allows.

    A PNG's chunks are walked and CRC-checked up to IEND, a JPEG must end with its EOI
    marker and a WebP must be as long as its RIFF header says: a cut-short transfer fails
    each. That costs a few per cent of a full decode, which for a 1024x1024 PNG took
    longer than all the rest of the server's work on the call. Other formats are decoded.
    """
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format == "PNG":
                im.verify()
            elif im.format == "JPEG":
                if not data.rstrip(b"\0").endswith(b"\xff\xd9"):
                    raise OSError("the JPEG data has no end marker")
            elif im.format == "WEBP":
                if int.from_bytes(data[4:8], "little") + 8 > len(data):
                    raise OSError("the WebP data is shorter than its header says")
            else:
                im.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"the image data is incomplete or not an image ({exc})") from None


@dataclass
class SaveContext:
    """Metadata recorded with every image of one upstream answer."""

    model: str
    prompt: str
    parameters: dict[str, Any]
    request_id: str | None = None
    job_id: str | None = None
    preview_edge: int | None = None
    """Long edge of the thumbnail the caller will show, if any: made while saving."""
    previews: dict[str, Future[Preview]] = field(default_factory=dict)
    """Image id -> its thumbnail, started from the decoded bytes as soon as they exist."""


async def save_one(
    services: Services,
    ctx: SaveContext,
    *,
    b64: str | B64Text | None,
    url: str | None,
    revised_prompt: str | None = None,
) -> StoredImage:
    """Save one result image: decode base64, or download the URL at once (it expires).

    With ``ctx.preview_edge``, the thumbnail is started from the decoded bytes, so it
    runs while the file is written and recorded (and the job's rows are updated) instead
    of after the call, re-reading and decoding the saved file.

    Raises ``ValueError`` (undecodable), ``TTAPIError`` (download failed) or
    ``StoreError`` (not an accepted image); the caller records these per image.
    """
    meta: dict[str, Any] = {
        "model": ctx.model,
        "prompt": ctx.prompt,
        "parameters": ctx.parameters,
        "revised_prompt": revised_prompt,
        "job_id": ctx.job_id,
        "request_id": ctx.request_id,
    }
    if b64:
        data, preview = await anyio.to_thread.run_sync(_decode_b64, b64, ctx.preview_edge)
        try:
            stored = await services.store.save_image(data, check=_verify_image, **meta)
        except BaseException:
            if preview is not None:
                preview.cancel()
            raise
        if preview is not None:
            ctx.previews[stored.id] = preview
        return stored
    assert url is not None
    client = services.require_client()
    store = services.store
    tmp = safe_child(store.output_dir, temp_filename(f"download-{time.time_ns()}"))
    try:
        await client.download(url, tmp, services.settings.max_download_bytes)
        await anyio.to_thread.run_sync(_verify_file, tmp)
        return await store.adopt_file(
            tmp, source_url=url, url_expires_at=time.time() + URL_TTL_SECONDS, **meta
        )
    finally:
        tmp.unlink(missing_ok=True)


def _verify_file(path: Any) -> None:
    with open(path, "rb") as f:
        _verify_image(f.read())


SAVES_IN_FLIGHT = 2
"""Images of one answer saved at once: one decodes while the other waits on fsync."""


async def save_response(
    services: Services, ctx: SaveContext, response: ImagesResponse, progress: ProgressFn
) -> tuple[list[SavedImage], list[MissingImage]]:
    """Save every image of an answer; keep the good ones when some fail.

    Two images are saved at a time, so decoding one overlaps writing the other; results
    keep the answer's order. Thumbnails (``ctx.preview_edge``) may still be running when
    this returns.
    """
    total = len(response.data)
    outcomes: list[SavedImage | MissingImage | None] = [None] * total
    slots = anyio.Semaphore(SAVES_IN_FLIGHT)

    async def save_at(index: int) -> None:
        item = response.data[index]
        async with slots:
            verb = "downloading and saving" if item.url and not item.b64_json else "saving"
            await progress(index, total, f"{verb} image {index + 1} of {total}")
            try:
                stored = await save_one(
                    services, ctx, b64=item.b64_json, url=item.url,
                    revised_prompt=item.revised_prompt,
                )
            except (ValueError, TTAPIError, StoreError, OSError) as exc:
                log.warning("image %d of %d not saved: %s", index, total, exc)
                outcomes[index] = MissingImage(
                    index=index, error=f"image {index} was not saved: {exc}")
                return
            outcomes[index] = to_saved(stored, index)

    async with anyio.create_task_group() as saves:
        for index in range(total):
            saves.start_soon(save_at, index)
    saved = [o for o in outcomes if isinstance(o, SavedImage)]
    missing = [o for o in outcomes if isinstance(o, MissingImage)]
    return saved, missing


def usage_dict(response: ImagesResponse) -> dict[str, Any] | None:
    return response.usage.model_dump(exclude_none=True) if response.usage else None
