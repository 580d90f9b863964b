"""Sign-in over HTTP: the server is an OAuth 2.1 protected resource (MCP authorization).

Loaded only when ``oauth_issuer`` is configured. The SDK does the protocol side
(RFC 9728 metadata naming the issuer, ``401`` with ``WWW-Authenticate: Bearer ...,
resource_metadata=...``); this module verifies the access tokens: JWTs signed by one of
the issuer's published keys (see :mod:`.jwks`), with the issuer, the audience (this
server's resource URL, RFC 8707), the expiry and a subject checked. Scopes are checked
per call by :mod:`.scopes`.

PyJWT (with ``cryptography``) is the JOSE library: the SDK already depends on it, it is
well kept, and it refuses ``alg: none`` and HMAC-with-a-public-key confusion by design.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings

from ttapi_mcp.config import ConfigError, Settings
from ttapi_mcp.store.users import LOCAL_USER

from .jwks import IssuerKeys, url_problem

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer
    from starlette.applications import Starlette

log = logging.getLogger("ttapi_mcp.server")

ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                        "ES256", "ES384", "ES512", "EdDSA"})
"""Asymmetric algorithms only: a shared-secret (HS*) or unsigned token is never accepted."""
LEEWAY_SECONDS = 30
"""Clock skew tolerated on ``exp``, ``nbf`` and ``iat``."""


def resource_url(settings: Settings) -> str | None:
    """This server's resource URL: the configured one, else ``<public_base_url>/mcp``."""
    if settings.oauth_resource_url:
        return settings.oauth_resource_url
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/") + "/mcp"
    return None


def oauth_problem(settings: Settings) -> str | None:
    """Why these OAuth settings cannot work, or None."""
    issuer = settings.oauth_issuer or ""
    problem = url_problem("oauth_issuer", issuer)
    if problem:
        return f"Configuration error: {problem}."
    if settings.http_bearer_token is not None:
        return ("Configuration error: http_bearer_token and oauth_issuer are both set. Choose "
                "one: the static token for a simple setup, or OAuth sign-in (unset "
                "http_bearer_token).")
    resource = resource_url(settings)
    if resource is None:
        return ("Configuration error: OAuth sign-in needs this server's public URL, the "
                "tokens' audience: set public_base_url (e.g. https://images.example.com) or "
                "oauth_resource_url (e.g. https://images.example.com/mcp).")
    problem = url_problem("the resource URL (oauth_resource_url or public_base_url)", resource)
    if problem:
        return f"Configuration error: {problem}."
    scopes = (settings.oauth_generate_scope, settings.oauth_read_scope)
    if any(not s or any(c.isspace() for c in s) for s in scopes):
        return ("Configuration error: oauth_generate_scope and oauth_read_scope must be "
                "non-empty and without spaces.")
    return None


def _scopes(claims: dict[str, Any]) -> list[str]:
    """RFC 9068 ``scope`` (space-separated), or ``scp`` (a list, as some issuers send)."""
    raw = claims.get("scope", claims.get("scp", ""))
    if isinstance(raw, str):
        return raw.split()
    if isinstance(raw, list):
        return [s for s in raw if isinstance(s, str)]
    return []


class JwtVerifier:
    """The SDK's ``TokenVerifier``: a JWT access token in, an ``AccessToken`` or None out."""

    def __init__(self, keys: IssuerKeys, resource: str) -> None:
        self.keys = keys
        self.resource = resource
        self._audiences = [resource.rstrip("/"), resource.rstrip("/") + "/"]

    async def verify_token(self, token: str) -> AccessToken | None:
        import jwt  # PyJWT; loaded on the first token, not at start

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            log.info("token refused: not a JWT")
            return None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS or (kid is not None and not isinstance(kid, str)):
            log.info("token refused: algorithm %.20r is not accepted", alg)
            return None
        jwk = await self.keys.key_for(kid)
        if jwk is None:
            log.info("token refused: no signing key %.60r at the issuer", kid)
            return None
        try:
            key = jwt.PyJWK(jwk, algorithm=None if jwk.get("alg") else alg)
            claims = jwt.decode(
                token, key, algorithms=[alg], audience=self._audiences,
                issuer=self.keys.issuer, leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            log.info("token refused: %s", type(exc).__name__)
            return None
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            log.info("token refused: no subject")
            return None
        if subject == LOCAL_USER:  # the owner of stdio-mode rows: never a signed-in user
            log.warning("token refused: its subject %r is reserved for the local owner; "
                        "map that account to another subject at the issuer", LOCAL_USER)
            return None
        client_id = claims.get("client_id") or claims.get("azp") or subject
        return AccessToken(
            token=token, client_id=str(client_id), scopes=_scopes(claims),
            expires_at=int(claims["exp"]), resource=self.resource, subject=subject,
            claims={"iss": claims["iss"]},
        )


def server_auth_options(settings: Settings) -> dict[str, Any]:
    """``MCPServer`` keyword arguments that make /mcp an OAuth protected resource."""
    problem = oauth_problem(settings)
    if problem:
        raise ConfigError(problem)
    assert settings.oauth_issuer is not None
    resource = resource_url(settings)
    assert resource is not None
    keys = IssuerKeys(settings.oauth_issuer, settings.oauth_jwks_cache_seconds,
                      settings.oauth_jwks_min_refresh_seconds)
    auth = AuthSettings(
        issuer_url=settings.oauth_issuer,  # type: ignore[arg-type]
        resource_server_url=resource,  # type: ignore[arg-type]
        validate_token_resource=True,
    )
    return {"auth": auth, "token_verifier": JwtVerifier(keys, resource)}


def add_scope_checks(app: Starlette, server: MCPServer[Any], settings: Settings,
                     mcp_path: str) -> None:
    """Check each call's scope (see :mod:`.scopes`) and advertise the scopes (RFC 9728).

    The SDK's metadata lists only scopes that every request needs (none here: a token
    for reading alone is fine), so its route is replaced by one listing both scopes, for
    clients to know what to ask the user for.
    """
    from mcp.server.auth.routes import (
        build_resource_metadata_url,
        create_protected_resource_routes,
    )
    from starlette.middleware import Middleware

    from .scopes import ScopeGate

    # The URLs as AuthSettings keeps them: an issuer without a path gets no trailing
    # slash, since clients compare it with the issuer's metadata character for character.
    auth = server.settings.auth
    assert auth is not None and auth.resource_server_url is not None
    resource = auth.resource_server_url
    metadata_url = build_resource_metadata_url(resource)
    scopes = [settings.oauth_generate_scope, settings.oauth_read_scope]
    ours = create_protected_resource_routes(
        resource, [auth.issuer_url], scopes_supported=scopes, resource_name="ttapi-mcp")
    paths = {route.path for route in ours}
    app.router.routes[:] = [
        *ours, *(r for r in app.router.routes if getattr(r, "path", None) not in paths)]
    # Appended, so it runs inside the SDK's authentication (it needs the verified token).
    app.user_middleware.append(Middleware(
        ScopeGate, server=server, path=mcp_path, generate_scope=settings.oauth_generate_scope,
        read_scope=settings.oauth_read_scope, resource_metadata_url=str(metadata_url)))
