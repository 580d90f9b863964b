"""Streamable HTTP at /mcp: Host/Origin checks, and a bearer token beyond loopback.

Bound to loopback, the SDK's DNS-rebinding protection (Host and Origin must be
loopback) is what keeps a web page from talking to the server. Bound anywhere else,
the server refuses to start without ``http_bearer_token``, and then every request
must carry ``Authorization: Bearer <token>`` (compared in constant time).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import sys
from typing import Any
from urllib.parse import urlsplit

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from ttapi_mcp.config import Settings

from .app import TTAPIServer
from .hooks import HOOK_PREFIX
from .ops import PROBE_PATHS, RequestIdMiddleware, register_probes

log = logging.getLogger("ttapi_mcp.server")

MCP_PATH = "/mcp"
_LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]"]
_LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def binding_problem(settings: Settings) -> str | None:
    """Why the HTTP server must not start with these settings, or None."""
    if settings.oauth_issuer:
        from .auth import oauth_problem

        return oauth_problem(settings)
    if settings.http_bearer_token is not None:
        return None
    public = urlsplit(settings.public_base_url or "").hostname
    if public and not is_loopback(public):
        return (
            f"Refusing to serve HTTP for the public address {settings.public_base_url} without "
            "sign-in: a reverse proxy in front of this loopback server would expose it (and "
            "your TTAPI balance) to everyone who reaches that address. Set http_bearer_token "
            "(environment variable TTAPI_HTTP_BEARER_TOKEN or \"http_bearer_token\" in the JSON "
            "config file) or configure OAuth sign-in (oauth_issuer)."
        )
    if is_loopback(settings.http_host):
        return None
    return (
        f"Refusing to serve HTTP on {settings.http_host}: binding beyond loopback exposes the "
        "server (and your TTAPI balance) to the network. Set http_bearer_token (environment "
        'variable TTAPI_HTTP_BEARER_TOKEN or "http_bearer_token" in the JSON config file) so '
        "every request must carry 'Authorization: Bearer <token>', or configure OAuth "
        "sign-in (oauth_issuer), or bind 127.0.0.1."
    )


def security_settings(settings: Settings) -> TransportSecuritySettings:
    """Loopback Host/Origin by default; the bind address as well when it is a real name."""
    host = settings.http_host
    hosts = list(_LOOPBACK_HOSTS)
    origins = list(_LOOPBACK_ORIGINS)
    if host in ("0.0.0.0", "::", ""):
        # Any interface: the Host header cannot be predicted; the bearer token guards it.
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    if not is_loopback(host):
        shown = f"[{host}]" if ":" in host else host
        hosts += [f"{shown}:*", shown]
        origins += [f"http://{shown}:*", f"https://{shown}:*", f"http://{shown}",
                    f"https://{shown}"]
    # Behind a reverse proxy that keeps the Host header: the public name is ours too.
    for public in (settings.public_base_url, settings.oauth_resource_url):
        parts = urlsplit(public or "")
        if parts.scheme in ("http", "https") and parts.netloc:
            hosts.append(parts.netloc)
            origins.append(f"{parts.scheme}://{parts.netloc}")
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


class BearerTokenMiddleware:
    """401 for any HTTP request without the configured bearer token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # TTAPI cannot send our bearer token; hook calls carry their own per-job token.
        # Health probes come from a balancer or orchestrator, and reveal nothing.
        path = str(scope.get("path", ""))
        open_path = path.startswith(HOOK_PREFIX) or path in PROBE_PATHS
        if scope["type"] == "http" and not open_path and not self._authorized(scope):
            await send({
                "type": "http.response.start", "status": 401,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"www-authenticate", b'Bearer realm="ttapi-mcp"')],
            })
            await send({"type": "http.response.body",
                        "body": b"Missing or wrong bearer token: send 'Authorization: Bearer "
                                b"<http_bearer_token>'.\n"})
            return
        await self.app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        given = b""
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                given = value
                break
        return hmac.compare_digest(given, self._expected)


def build_http_app(settings: Settings, server: MCPServer[Any]) -> ASGIApp:
    """The ASGI app: streamable HTTP at /mcp, wrapped in the bearer check if configured."""
    if settings.public_base_url and isinstance(server, TTAPIServer):
        server.hook_base_url = settings.public_base_url.rstrip("/")
    if isinstance(server, TTAPIServer):
        register_probes(server)
    starlette_app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        transport_security=security_settings(settings),
        host=settings.http_host,
    )
    if settings.oauth_issuer:
        from .auth import add_scope_checks

        add_scope_checks(starlette_app, server, settings, MCP_PATH)
    app: ASGIApp = starlette_app
    if settings.http_bearer_token is not None:
        app = BearerTokenMiddleware(app, settings.http_bearer_token.get_secret_value())
    if not settings.oauth_issuer:  # signed-in users get the gallery with per-user isolation
        app = _with_gallery(settings, server, app)
    return RequestIdMiddleware(app)


def _with_gallery(settings: Settings, server: MCPServer[Any], app: ASGIApp) -> ASGIApp:
    """``/gallery`` beside ``/mcp``: a signed link instead of the bearer header."""
    from .apps.tools import thumb_cache
    from .gallery import GalleryKeys, GalleryRouter, build_gallery_app

    token = settings.http_bearer_token
    keys = (GalleryKeys.from_bearer_token(token.get_secret_value()) if token is not None
            else GalleryKeys(None))

    async def source() -> Any:
        startup = getattr(server, "startup", None)
        if startup is None:
            raise RuntimeError("the server is not running")
        services = await startup.services()
        return services.store, thumb_cache(settings)

    gallery = build_gallery_app(source, keys, security_settings(settings))
    return GalleryRouter(app, gallery)


def serve_http(settings: Settings, server: MCPServer[Any]) -> int:
    """Run uvicorn until stopped; 2 when the binding is refused."""
    problem = binding_problem(settings)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    import uvicorn

    app = build_http_app(settings, server)
    log.info("serving MCP over HTTP at http://%s:%d%s", settings.http_host, settings.http_port,
             MCP_PATH)
    uvicorn.run(app, host=settings.http_host, port=settings.http_port,
                log_level=settings.log_level.lower(), log_config=None,
                access_log=False)  # access lines would show hook URLs' tokens
    return 0
