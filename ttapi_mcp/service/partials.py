"""Partial images of streamed calls (§11.4): saved at once as previews of their job, each
announced as a progress note naming its file and its ttapi://partials/ URI."""

from __future__ import annotations

import logging
from typing import Any

from ttapi_mcp.api.streaming import PartialFn
from ttapi_mcp.catalog import MODELS
from ttapi_mcp.config import Settings
from ttapi_mcp.store import StoreError

from .common import Services
from .results import MissingImage
from .runner import LiveJob

log = logging.getLogger("ttapi_mcp.service")
PARTIAL_PREFIX = "ttapi://partials/"
MAYBE_BILLED = (
    "the stream ended before this image completed; it may have been billed (check the "
    "TTAPI dashboard before repeating the call)"
)


def apply_default(settings: Settings, params: dict[str, Any]) -> None:
    """The configured partial_images, for GPT models only, when the call did not say."""
    spec = MODELS.get(str(params.get("model")))
    if settings.partial_images and spec is not None and spec.family == "gpt":
        params.setdefault("partial_images", settings.partial_images)


def partial_saver(services: Services, job: LiveJob, sent: dict[str, Any]) -> PartialFn | None:
    """The client's on_partial for a streamed call (None when nothing is streamed)."""
    if not sent.get("stream"):
        return None

    async def on_partial(image_index: int, partial_index: int, data: bytes) -> None:
        try:
            saved = await services.store.save_partial(job.job_id, image_index, partial_index,
                                                      data)
        except (ValueError, OSError, StoreError) as exc:
            log.warning("partial image of %s not saved: %s", job.job_id, exc)
            return
        job.set_phase(f"partial {partial_index + 1} of image {image_index + 1} saved as a "
                      f"preview: {saved.path} ({PARTIAL_PREFIX}{saved.partial_id}); the final "
                      "image follows")

    return on_partial


def stream_missing(saved_count: int, missing: int, problems: list[str]) -> list[MissingImage]:
    """The images a broken stream never completed, in the 'may have been billed' words."""
    why = f" ({'; '.join(problems)})" if problems else ""
    return [MissingImage(index=saved_count + i, error=f"image {saved_count + i}: {MAYBE_BILLED}"
                         f"{why}") for i in range(missing)]
