"""``ttapi-mcp gallery``: the browser gallery of the store, for people who use stdio.

It serves the gallery alone on 127.0.0.1 (a free port unless given), read-only over the
same store as the MCP server, behind a signed link it prints (and opens in a browser
where there is one). ``--link`` instead prints a fresh link for the configured HTTP
server's own ``/gallery`` (signed with keys derived from its bearer token).
"""

from __future__ import annotations

import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ttapi_mcp.config import Settings


def gallery_link(settings: Settings) -> str:
    """A link into the HTTP server's ``/gallery`` (signed when a bearer token is set)."""
    from ttapi_mcp.server.gallery import GalleryKeys

    token = settings.http_bearer_token
    keys = (GalleryKeys.from_bearer_token(token.get_secret_value()) if token is not None
            else GalleryKeys(None))
    host = settings.http_host if settings.http_host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    base = settings.public_base_url or f"http://{shown}:{settings.http_port}"
    return keys.link(base)


def build_standalone_app(settings: Settings, keys: Any) -> Any:
    """The gallery alone, with a lifespan that opens the store."""
    from ttapi_mcp.server.apps.tools import thumb_cache
    from ttapi_mcp.server.gallery import build_gallery_app
    from ttapi_mcp.server.http import security_settings
    from ttapi_mcp.storage import shared_storage
    from ttapi_mcp.store import ImageStore

    opened: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        async with ImageStore(settings.output_dir, settings.store_path,
                              database_url=settings.database_url_value(),
                              storage=shared_storage(settings)) as store:
            opened["store"] = store
            yield

    async def source() -> Any:
        return opened["store"], thumb_cache(settings)

    loopback = settings.model_copy(update={"http_host": "127.0.0.1"})
    return build_gallery_app(source, keys, security_settings(loopback), lifespan=lifespan)


def _open_browser_when_up(server: Any, url: str) -> None:
    """Open ``url`` once the server listens (a console browser would block, so in a thread)."""
    import threading
    import time
    import webbrowser

    def wait_then_open() -> None:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            webbrowser.get()
        except webbrowser.Error:
            return  # no browser here: the printed link is enough
        webbrowser.open(url)

    threading.Thread(target=wait_then_open, daemon=True).start()


def run_gallery(settings: Settings, port: int, open_browser: bool) -> int:
    """Serve until interrupted; prints the link first."""
    import uvicorn

    from ttapi_mcp.server.gallery import GalleryKeys

    keys = GalleryKeys.random()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        print(f"Cannot listen on 127.0.0.1:{port}: {exc}. Pick another --port.", file=sys.stderr)
        return 2
    url = keys.link(f"http://127.0.0.1:{sock.getsockname()[1]}")
    print(f"Gallery of {settings.output_dir} at {url}\n(the link lets a browser in for "
          "10 minutes; Ctrl-C stops)", flush=True)
    server = uvicorn.Server(uvicorn.Config(build_standalone_app(settings, keys),
                                           log_level="warning", access_log=False))
    if open_browser:
        _open_browser_when_up(server, url)
    server.run(sockets=[sock])
    return 0
