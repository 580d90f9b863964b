"""The browser gallery: the app's pages outside an MCP host, read-only over the store.

``/gallery/`` is a small host page that runs the same app page in a sandboxed frame and
answers its read-only tool calls (``app_gallery``, ``app_images``) at
``/gallery/api/call``. It gets the protection of ``/mcp``: Host and Origin must be
allowed, and posts must be JSON. Where a browser cannot prove who it is with a header
(a bearer token is configured, or ``ttapi-mcp gallery`` serves it), the way in is a
short-lived signed link: ``/gallery/?key=...`` is checked, exchanged for an HttpOnly,
SameSite=Strict cookie signed the same way, and removed from the address bar.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from starlette.routing import Route

if TYPE_CHECKING:
    from ttapi_mcp.store import ImageStore
    from ttapi_mcp.thumbcache import ThumbCache

GALLERY_PREFIX = "/gallery"
LINK_SECONDS = 600
"""How long a printed link lets a browser in."""
SESSION_SECONDS = 12 * 3600
"""How long the cookie it is exchanged for lasts."""
COOKIE = "ttapi_gallery"
_PAGE_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
             "img-src data:; connect-src 'self'; frame-src 'self'; frame-ancestors 'none'; "
             "base-uri 'none'; form-action 'none'")
_HEADERS = {"Content-Security-Policy": _PAGE_CSP, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
_DENIED = ("This gallery needs the signed link printed by 'ttapi-mcp gallery' (or "
           "'ttapi-mcp gallery --link' for a server in HTTP mode); links last "
           f"{LINK_SECONDS // 60} minutes.\n")

StoreSource = Callable[[], Awaitable[tuple["ImageStore", "ThumbCache"]]]


class GalleryKeys:
    """Signs and checks the links and cookies that let a browser in."""

    def __init__(self, secret: bytes | None) -> None:
        """``secret`` None: no link needed (loopback, no bearer token): Host/Origin only."""
        self._secret = secret

    @classmethod
    def from_bearer_token(cls, token: str) -> GalleryKeys:
        """Keys derived from the bearer token, so the CLI can sign links for a server."""
        return cls(hmac.new(token.encode(), b"ttapi-mcp gallery links", hashlib.sha256).digest())

    @classmethod
    def random(cls) -> GalleryKeys:
        return cls(secrets.token_bytes(32))

    @property
    def required(self) -> bool:
        return self._secret is not None

    def sign(self, purpose: str, seconds: int, now: float | None = None) -> str:
        assert self._secret is not None
        expires = int((now or time.time()) + seconds)
        mac = hmac.new(self._secret, f"{purpose}:{expires}".encode(), hashlib.sha256).digest()
        return f"{expires}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"

    def valid(self, purpose: str, token: str | None, now: float | None = None) -> bool:
        if self._secret is None:
            return True
        if not token or "." not in token:
            return False
        expires, _, mac = token.partition(".")
        if not expires.isdigit() or int(expires) < (now or time.time()):
            return False
        good = hmac.new(self._secret, f"{purpose}:{expires}".encode(), hashlib.sha256).digest()
        return hmac.compare_digest(base64.urlsafe_b64encode(good).decode().rstrip("="), mac)

    def link(self, base_url: str) -> str:
        """The address to open: ``{base_url}/gallery/?key=...`` (plain when none is needed)."""
        base = f"{base_url.rstrip('/')}{GALLERY_PREFIX}/"
        return f"{base}?key={self.sign('link', LINK_SECONDS)}" if self.required else base


class _Call(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class _ImagesArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image_ids: list[str] = Field(min_length=1, max_length=16)
    size: Literal["thumb", "large", "full"] = "large"


class _GalleryArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cursor: str | None = None
    query: str | None = Field(None, max_length=500)
    model: str | None = Field(None, max_length=100)
    tool: Literal["generate_image", "edit_image", "gpt4o_image"] | None = None
    since: str | None = None
    until: str | None = None
    job_id: str | None = Field(None, max_length=200)
    limit: int = Field(60, ge=1, le=200)


def _asset(name: str) -> str:
    return (resources.files("ttapi_mcp.server.apps") / name).read_text(encoding="utf-8")


def _error(text: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": True}


async def _run_call(source: StoreSource, call: _Call) -> dict[str, Any]:
    from ttapi_mcp.store.gallery import GalleryFilter

    from .apps.tools import gallery_result, images_result

    try:
        if call.name == "app_gallery":
            a = _GalleryArgs.model_validate(call.arguments)
            store, cache = await source()
            result = await gallery_result(
                store, cache, GalleryFilter(a.query, a.model, a.tool, a.since, a.until,
                                            a.job_id), a.cursor, a.limit)
        elif call.name == "app_images":
            b = _ImagesArgs.model_validate(call.arguments)
            store, cache = await source()
            result = await images_result(store, cache, b.image_ids, b.size)
        else:
            return _error(f"{call.name} is not available in the browser gallery, which only "
                          "reads the store; ask your agent to run it.")
    except ValidationError as exc:
        fields = ", ".join(sorted({".".join(map(str, e["loc"])) for e in exc.errors()}))
        return _error(f"invalid arguments for {call.name}: {fields}")
    except ToolError as exc:
        return _error(str(exc))
    return dict(result.model_dump(by_alias=True, mode="json", exclude_none=True))


def build_gallery_app(
    source: StoreSource, keys: GalleryKeys, security: TransportSecuritySettings,
    lifespan: Any = None,
) -> Starlette:
    """The gallery routes under ``/gallery``."""
    guard = TransportSecurityMiddleware(security)

    def signed_in(request: Request) -> bool:
        return keys.valid("session", request.cookies.get(COOKIE))

    async def page(request: Request) -> Any:
        refused = await guard.validate_request(request)
        if refused is not None:
            return refused
        key = request.query_params.get("key")
        if keys.required and key is not None:
            if not keys.valid("link", key):
                return PlainTextResponse(_DENIED, status_code=403)
            response = RedirectResponse(f"{GALLERY_PREFIX}/", status_code=303)
            response.set_cookie(COOKIE, keys.sign("session", SESSION_SECONDS),
                                max_age=SESSION_SECONDS, path=GALLERY_PREFIX, httponly=True,
                                samesite="strict", secure=request.url.scheme == "https")
            return response
        if not signed_in(request):
            return PlainTextResponse(_DENIED, status_code=403)
        if request.url.path == GALLERY_PREFIX:
            return RedirectResponse(f"{GALLERY_PREFIX}/", status_code=308)
        return HTMLResponse(_asset("gallery_host.html"), headers=_HEADERS)

    async def app_page(request: Request) -> Any:
        refused = await guard.validate_request(request)
        if refused is not None:
            return refused
        if not signed_in(request):
            return PlainTextResponse(_DENIED, status_code=403)
        from .apps.page import app_html

        return HTMLResponse(app_html(), headers=_HEADERS)

    async def api(request: Request) -> Any:
        refused = await guard.validate_request(request, is_post=True)
        if refused is not None:
            return refused
        if not signed_in(request):
            return PlainTextResponse(_DENIED, status_code=403)
        try:
            call = _Call.model_validate(json.loads(await request.body()))
        except (ValueError, ValidationError):
            return PlainTextResponse("expected JSON {\"name\": ..., \"arguments\": {...}}\n",
                                     status_code=400)
        return JSONResponse(await _run_call(source, call), headers={"Cache-Control": "no-store"})

    return Starlette(routes=[
        Route(GALLERY_PREFIX, page, methods=["GET"]),
        Route(f"{GALLERY_PREFIX}/", page, methods=["GET"]),
        Route(f"{GALLERY_PREFIX}/app.html", app_page, methods=["GET"]),
        Route(f"{GALLERY_PREFIX}/api/call", api, methods=["POST"]),
    ], lifespan=lifespan)


class GalleryRouter:
    """``/gallery`` to the gallery (which checks its own way in), the rest to ``app``.

    In front of the bearer check on purpose: a browser cannot send that header.
    """

    def __init__(self, app: Any, gallery: Any) -> None:
        self.app = app
        self.gallery = gallery

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] == "http" and (path == GALLERY_PREFIX
                                        or path.startswith(f"{GALLERY_PREFIX}/")):
            await self.gallery(scope, receive, send)
        else:
            await self.app(scope, receive, send)
