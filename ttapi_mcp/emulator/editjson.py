"""E2 as JSON (§11.5): `images` as `{"image_url": ...}` objects, GPT models only.

An `image_url` may be a data URI or a URL on the emulator's own `/files/` route; it
fetches nothing else. `file_id` needs a Files API the emulator does not have: 400.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool

from .images import Upload
from .render import MIME, render
from .validate import GPT_MODELS, bad

if TYPE_CHECKING:
    from .app import Emulator

_DATA_URI = re.compile(r"^data:(image/[a-z0-9.+-]+);base64,(.*)$", re.IGNORECASE | re.DOTALL)


async def _fetch(em: Emulator, ref: Any, param: str) -> Upload:
    if not isinstance(ref, dict):
        raise bad(param, f"Invalid '{param}': expected an object with image_url or file_id.")
    if "file_id" in ref:
        raise bad(param, "file_id is not supported here: there is no Files API; use image_url.",
                  "unsupported_parameter")
    url = ref.get("image_url")
    if not isinstance(url, str) or not url:
        raise bad(param, f"Invalid '{param}': image_url must be a URL or a data URI.")
    match = _DATA_URI.match(url)
    if match:
        try:
            data = base64.b64decode(match.group(2), validate=True)
        except (binascii.Error, ValueError):
            raise bad(param, f"Invalid '{param}': the data URI is not valid base64.") from None
        return Upload(param, None, match.group(1).lower(), data)
    parts = urlsplit(url)
    own = em.base_url is not None and f"{parts.scheme}://{parts.netloc}" == em.base_url
    stored = em.files.get(parts.path.removeprefix("/files/")) if own else None
    if stored is None:
        raise bad(param, f"Invalid '{param}': the image at {url[:80]} could not be downloaded.",
                  "invalid_image_url")
    data = await run_in_threadpool(render, stored.spec)
    return Upload(param, None, MIME[stored.spec.output_format], data)


async def json_edit_parts(em: Emulator, body: dict[str, Any]) -> list[tuple[str, Any]]:
    """The JSON body as the ordered (name, value) parts the multipart handler takes."""
    model = body.get("model", "gpt-image-1")
    if model not in GPT_MODELS:
        raise bad("model", f"The JSON form of image edits supports GPT image models only, not "
                           f"'{model}'; send dall-e-2 edits as multipart/form-data.")
    images = body.get("images")
    if not isinstance(images, list) or not 1 <= len(images) <= 16:
        raise bad("images", "images must be an array of 1 to 16 objects with image_url.")
    parts: list[tuple[str, Any]] = []
    for i, ref in enumerate(images):
        parts.append(("image[]", await _fetch(em, ref, f"images[{i}]")))
    if body.get("mask") is not None:
        parts.append(("mask", await _fetch(em, body["mask"], "mask")))
    for name, value in body.items():
        if name not in ("images", "mask"):
            parts.append((name, value if isinstance(value, str) else _as_form(value)))
    return parts


def _as_form(value: Any) -> Any:
    """JSON values as the multipart handler's text (it converts them back by field)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int) else value
