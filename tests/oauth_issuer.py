"""A loopback OAuth authorization server for tests: real discovery document, real JWKS,
real signed tokens (RS256 and ES256 keys made with ``cryptography``).

Tests sign tokens directly (``token(...)``), or an OAuth client runs the whole
authorization-code flow with PKCE: dynamic client registration (``/register``),
``/authorize`` (the user is taken as signed in and consenting: it redirects at once
with a code; ``grant`` decides which of the requested scopes are granted) and
``/token`` (checks the PKCE verifier, puts the RFC 8707 ``resource`` in ``aud``).
Every request's path is logged, so tests can count key fetches. Runs on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ALL_SCOPES = "images:generate images:read"


def new_key(kind: str = "RSA") -> Any:
    if kind == "EC":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: Any, kid: str, with_alg: bool = True) -> dict[str, Any]:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        data = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        alg = "ES256"
    else:
        data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        alg = "RS256"
    data.update({"kid": kid, "use": "sig"})
    if with_alg:
        data["alg"] = alg
    return data


class LoopbackIssuer:
    """Publishes ``/.well-known/oauth-authorization-server`` (or only the OpenID one) and
    ``/jwks``; ``token(...)`` signs an access token with one of its keys."""

    def __init__(self, path: str = "", openid_only: bool = False) -> None:
        self.path = path
        self.openid_only = openid_only
        self.keys: dict[str, Any] = {}
        self.published: list[str] = []
        self.requests: list[str] = []
        self.jwks_status = 200
        self.add_key("key-1")
        self.clients: dict[str, dict[str, Any]] = {}
        self.codes: dict[str, dict[str, Any]] = {}
        self.grant: Callable[[str], str] = lambda requested: requested
        """Which scopes /authorize grants, from the space-separated requested ones."""
        self.token_requests: list[dict[str, str]] = []
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, status: int, body: Any, location: str | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                issuer.requests.append(self.path.split("?")[0])
                if self.path.split("?")[0] == f"{issuer.path}/authorize":
                    self._reply(*issuer.authorize(self.path))
                    return
                self._reply(*issuer.answer(self.path))

            def do_POST(self) -> None:  # noqa: N802
                path = self.path.split("?")[0]
                issuer.requests.append(path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if path == f"{issuer.path}/register":
                    self._reply(*issuer.register(json.loads(body)))
                elif path == f"{issuer.path}/token":
                    form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                    self._reply(*issuer.exchange(form))
                else:
                    self._reply(404, {"error": "not found"})

            def log_message(self, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self._http.server_address[1]}"
        self.issuer = self.origin + path
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackIssuer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(10)

    # -- keys ------------------------------------------------------------------------------

    def add_key(self, kid: str, kind: str = "RSA", publish: bool = True) -> None:
        self.keys[kid] = new_key(kind)
        if publish:
            self.published.append(kid)

    def rotate(self, new_kid: str, kind: str = "RSA") -> None:
        """Publish a new key and withdraw every old one."""
        self.add_key(new_kid, kind, publish=False)
        self.published = [new_kid]

    def jwks_fetches(self) -> int:
        return sum(1 for p in self.requests if p == "/jwks")

    # -- HTTP --------------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "registration_endpoint": f"{self.issuer}/register",
            "token_endpoint_auth_methods_supported": ["none"],
            "jwks_uri": f"{self.origin}/jwks",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ALL_SCOPES.split(),
        }

    def answer(self, path: str) -> tuple[int, Any]:
        oauth = f"/.well-known/oauth-authorization-server{self.path}"
        openid = {f"/.well-known/openid-configuration{self.path}",
                  f"{self.path}/.well-known/openid-configuration"}
        if (path == oauth and not self.openid_only) or path in openid:
            return 200, self.metadata()
        if path == "/jwks":
            keys = [public_jwk(self.keys[k], k) for k in self.published]
            return self.jwks_status, {"keys": keys}
        return 404, {"error": "not found"}

    # -- the authorization-code flow ---------------------------------------------------------

    def register(self, metadata: dict[str, Any]) -> tuple[int, Any]:
        client_id = f"client-{secrets.token_hex(4)}"
        record = {**metadata, "client_id": client_id, "token_endpoint_auth_method": "none",
                  "client_id_issued_at": int(time.time())}
        self.clients[client_id] = record
        return 201, record

    def authorize(self, path: str) -> tuple[int, Any, str | None]:
        query = {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}
        client = self.clients.get(query.get("client_id", ""))
        if client is None or query.get("redirect_uri") not in client["redirect_uris"]:
            return 400, {"error": "invalid_client"}, None
        if query.get("code_challenge_method") != "S256":
            return 400, {"error": "invalid_request"}, None
        code = secrets.token_urlsafe(16)
        self.codes[code] = {**query, "scope": self.grant(query.get("scope", ""))}
        target = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
        return 302, {}, target

    def exchange(self, form: dict[str, str]) -> tuple[int, Any]:
        self.token_requests.append(form)
        grant = self.codes.pop(form.get("code", ""), None)
        if grant is None or form.get("grant_type") != "authorization_code":
            return 400, {"error": "invalid_grant"}
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant["code_challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "PKCE"}
        audience = form.get("resource") or grant.get("resource")
        if not audience:
            return 400, {"error": "invalid_target"}
        token = self.token(audience, scope=grant["scope"], client_id=grant["client_id"])
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 300,
                     "scope": grant["scope"]}

    # -- tokens ------------------------------------------------------------------------------

    def token(
        self, audience: str | list[str], *, scope: str | None = ALL_SCOPES,
        subject: str | None = "alice", kid: str | None = None, expires_in: float = 300,
        issuer: str | None = None, key: Any = None, headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A signed access token; by default valid for 5 minutes with both scopes."""
        kid = kid or self.published[-1]
        key = key or self.keys[kid]
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": issuer or self.issuer, "aud": audience, "iat": now,
            "exp": now + int(expires_in), "jti": uuid.uuid4().hex,
            **{"client_id": "test-client", **claims},
        }
        if subject is not None:
            payload["sub"] = subject
        if scope is not None:
            payload["scope"] = scope
        alg = "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS256"
        return jwt.encode(payload, key, algorithm=alg,
                          headers={"kid": kid, "typ": "at+jwt", **(headers or {})})
