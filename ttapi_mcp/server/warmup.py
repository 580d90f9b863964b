"""Work the first tool call would otherwise wait for, done while the model thinks.

A client lists the tools, then the model takes a second or more to decide on a call.
The first call used to pay, on the spot, for the TLS trust store (about 80 ms here),
importing Pillow and its PNG and JPEG plugins, the preview code, starting the store's
hashing threads and the HTTP pool, and the SDK's first build of the model that carries a
confirmation's answer. Once the services are up, a worker thread does that work instead
(and the event loop builds the pool), so the first call costs about what a warm one
does. It is best effort: a failure here only means the call pays later.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio.to_thread

if TYPE_CHECKING:
    from ttapi_mcp.api import TTAPIClient

log = logging.getLogger("ttapi_mcp.server")


async def warm_up_services(client: TTAPIClient | None) -> None:
    """The blocking part in a worker thread, then the pool on the event loop."""
    await anyio.to_thread.run_sync(warm_up, client)
    if client is not None:
        try:
            client.prepare_pool()
        except Exception:  # never fatal: the first call builds it
            log.debug("building the HTTP pool early failed", exc_info=True)


def warm_up(client: TTAPIClient | None) -> None:
    """Blocking; run it in a worker thread."""
    try:
        if client is not None:
            client.prepare_tls()
        from typing import Any

        from mcp.server.elicitation import AcceptedElicitation
        from PIL import Image

        import ttapi_mcp.contactsheet
        import ttapi_mcp.previews
        import ttapi_mcp.server.results  # noqa: F401
        from ttapi_mcp.store.core import start_hash_threads

        Image.preinit()  # the plugins Image.open tries first: PNG, JPEG, GIF, BMP, PPM
        # Not the WebP codec (0.3 MB): only a preview of an image with transparency uses it.
        _start_preview_threads()
        start_hash_threads()
        AcceptedElicitation[Any]  # noqa: B018 - pydantic builds (and caches) the class here
    except Exception:  # never fatal: the first call then loads what it needs itself
        log.debug("warm-up failed", exc_info=True)


def _start_preview_threads() -> None:
    """One small thumbnail per preview thread: the threads start and the PNG decoder and
    JPEG encoder run once before a real image needs them."""
    import io

    from PIL import Image

    from ttapi_mcp.previews import PREVIEW_THREADS, run_on_preview_threads, thumbnail_sync

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 120, 200)).save(buf, format="PNG")
    data = buf.getvalue()
    for future in [run_on_preview_threads(thumbnail_sync, data, 32)
                   for _ in range(PREVIEW_THREADS)]:
        future.result(timeout=10)
