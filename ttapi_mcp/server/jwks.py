"""The authorization server's signing keys: found through its discovery document, cached.

Why a cache with two clocks: every request carries a token, and fetching keys per
request would tie our latency to the issuer's. Keys are kept ``cache_seconds``; a
token signed with a key id we do not know (the issuer rotated its keys) triggers one
refetch, but never more than one per ``min_refresh_seconds``, so a flood of forged key
ids cannot make us hammer the issuer. When a refetch fails the old keys stay in use.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2

from .http import is_loopback

log = logging.getLogger("ttapi_mcp.server")

FETCH_TIMEOUT = 10.0
MAX_DOCUMENT_BYTES = 1024 * 1024
"""A discovery document or key set larger than this is refused (they are a few KB)."""


class KeyFetchError(Exception):
    """Raised when the discovery document or the key set cannot be fetched or used."""


def url_problem(name: str, url: str) -> str | None:
    """Why ``url`` cannot name an issuer's endpoint: https, or http on loopback only."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{name} {url!r} is not an absolute http(s) URL"
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        return f"{name} {url!r} must use https (plain http is allowed on loopback only)"
    return None


def discovery_urls(issuer: str) -> list[str]:
    """Where the metadata may live, in the order the MCP authorization spec gives."""
    parts = urlsplit(issuer.rstrip("/"))
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path
    if not path:
        return [f"{origin}/.well-known/oauth-authorization-server",
                f"{origin}/.well-known/openid-configuration"]
    return [f"{origin}/.well-known/oauth-authorization-server{path}",
            f"{origin}/.well-known/openid-configuration{path}",
            f"{origin}{path}/.well-known/openid-configuration"]


async def _get_json(http: httpx2.AsyncClient, url: str) -> Any:
    body = bytearray()
    try:
        async with http.stream("GET", url, headers={"Accept": "application/json"}) as response:
            if response.status_code != 200:
                raise KeyFetchError(f"{url} answered HTTP {response.status_code}")
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise KeyFetchError(f"{url} sent more than {MAX_DOCUMENT_BYTES} bytes")
    except httpx2.HTTPError as exc:
        raise KeyFetchError(f"{url}: {type(exc).__name__}: {exc}") from None
    try:
        return json.loads(body)
    except ValueError:
        raise KeyFetchError(f"{url} did not answer JSON") from None


class IssuerKeys:
    """The issuer's public signing keys (JWKs) by key id, fetched and refreshed on demand."""

    def __init__(
        self,
        issuer: str,
        cache_seconds: float = 3600.0,
        min_refresh_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.configured_issuer = issuer
        self.issuer = issuer
        """The issuer exactly as the discovery document spells it (tokens' ``iss``)."""
        self.cache_seconds = cache_seconds
        self.min_refresh_seconds = min_refresh_seconds
        self.fetches = 0
        """How many times the key set was fetched (successfully or not)."""
        self._clock = clock
        self._keys: list[dict[str, Any]] = []
        self._fetched_at: float | None = None
        self._last_attempt: float | None = None
        self._lock = anyio.Lock()

    def _find(self, kid: str | None) -> dict[str, Any] | None:
        if kid is None:
            return self._keys[0] if len(self._keys) == 1 else None
        return next((k for k in self._keys if k.get("kid") == kid), None)

    def _stale(self, now: float) -> bool:
        return self._fetched_at is None or now - self._fetched_at > self.cache_seconds

    async def key_for(self, kid: str | None) -> dict[str, Any] | None:
        """The JWK for ``kid``, refetching the set (rate limited) when it is unknown or old."""
        key = self._find(kid)
        if key is not None and not self._stale(self._clock()):
            return key
        async with self._lock:
            now = self._clock()
            key = self._find(kid)
            if key is not None and not self._stale(now):
                return key  # another request refreshed the set meanwhile
            last = self._last_attempt
            if last is not None and now - last < self.min_refresh_seconds:
                return key
            try:
                await self.refresh()
            except KeyFetchError as exc:
                log.warning("could not fetch the signing keys of %s: %s",
                            self.configured_issuer, exc)
            return self._find(kid)

    async def refresh(self) -> int:
        """Fetch the discovery document, then the key set; the number of usable keys."""
        self._last_attempt = self._clock()
        self.fetches += 1
        async with httpx2.AsyncClient(timeout=FETCH_TIMEOUT, follow_redirects=False) as http:
            metadata = await self._discover(http)
            jwks_uri = metadata.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise KeyFetchError("the discovery document names no jwks_uri")
            problem = url_problem("jwks_uri", jwks_uri)
            if problem:
                raise KeyFetchError(problem)
            document = await _get_json(http, jwks_uri)
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, list):
            raise KeyFetchError("the key set has no 'keys' list")
        usable = [k for k in keys if isinstance(k, dict) and k.get("use", "sig") == "sig"
                  and k.get("kty") in ("RSA", "EC", "OKP")]
        self._keys = usable
        self._fetched_at = self._clock()
        log.info("fetched %d signing key(s) of %s", len(usable), self.issuer)
        return len(usable)

    async def _discover(self, http: httpx2.AsyncClient) -> dict[str, Any]:
        """The first discovery document found; its issuer must be the configured one."""
        failures = []
        for url in discovery_urls(self.configured_issuer):
            try:
                metadata = await _get_json(http, url)
            except KeyFetchError as exc:
                failures.append(str(exc))
                continue
            if not isinstance(metadata, dict):
                raise KeyFetchError(f"{url} is not a JSON object")
            issuer = metadata.get("issuer")
            if not isinstance(issuer, str) or (
                issuer.rstrip("/") != self.configured_issuer.rstrip("/")
            ):
                raise KeyFetchError(f"{url} names issuer {issuer!r}, not the configured "
                                    f"{self.configured_issuer!r} (RFC 8414 §3.3)")
            self.issuer = issuer
            return metadata
        raise KeyFetchError("no discovery document: " + "; ".join(failures))
