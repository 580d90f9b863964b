"""Per-call scopes for OAuth sign-in: ``403 insufficient_scope`` before the SDK sees a call.

Why at the HTTP layer: the MCP authorization spec has a server answer a token that
lacks a scope with HTTP 403 and ``WWW-Authenticate: Bearer error="insufficient_scope",
scope="..."``, so the client can ask the user for more (step-up). Which scope a call
needs depends on its JSON-RPC body, so the body is read here and replayed; one over
the SDK's cap (4 MiB) gets 413 here, counted while it streams.

- ``tools/call`` of a read-only tool (``fetch_job``): the read scope; any other tool
  (the paid ones, and names we do not know): the generate scope.
- ``resources/*`` (saved images, jobs, listing, subscribing): the read scope, except
  ``resources/templates/list``, which only declares; likewise ``tasks/*``,
  ``completion/complete`` (it could complete image ids), and ``subscriptions/listen``
  when it asks for resource or task updates.
- everything else (initialize, discovery, listing tools and prompts, ping): any valid
  token.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pydantic_core
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FREE_RESOURCE_METHODS = frozenset({"resources/templates/list"})
READ_PREFIXES = ("resources/", "tasks/", "completion/")
FORBIDDEN_CODE = -32003
"""JSON-RPC error code (from the range left to servers) of a call refused for its scope."""
_UNSAFE = re.compile(r"[^A-Za-z0-9_./:-]")


def _shown(text: str) -> str:
    """A caller's name made safe for a header value: no quotes, no line breaks."""
    return _UNSAFE.sub("?", text)[:64]


class ScopeGate:
    """ASGI middleware (inside the SDK's authentication) checking each call's scope."""

    def __init__(
        self, app: ASGIApp, *, server: MCPServer[Any], path: str, generate_scope: str,
        read_scope: str, resource_metadata_url: str,
        max_body: int = DEFAULT_MAX_REQUEST_BODY_SIZE,
    ) -> None:
        self.app = app
        self.server = server
        self.path = path
        self.generate_scope = generate_scope
        self.read_scope = read_scope
        self.resource_metadata_url = resource_metadata_url
        self.max_body = max_body
        self._read_only_tools: frozenset[str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = scope.get("user")
        if (scope["type"] != "http" or scope.get("method") != "POST"
                or scope.get("path") != self.path or not isinstance(user, AuthenticatedUser)):
            await self.app(scope, receive, send)  # the SDK answers 401 to the unsigned
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body:
            await self._too_large(send)  # refused unread
            return
        chunks: list[Message] = []
        size, more = 0, True
        while more:
            message = await receive()
            chunks.append(message)
            if message["type"] != "http.request":
                break  # the client went away: the SDK sees the disconnect
            size += len(message.get("body", b""))
            more = bool(message.get("more_body"))
            if size > self.max_body:
                await self._too_large(send)  # counted while read, never buffered beyond
                return
        if not more:
            body = b"".join(m.get("body", b"") for m in chunks)
            missing = await self._missing_scope(body, set(user.scopes))
            if missing is not None:
                await self._refuse(send, *missing, granted=user.scopes)
                return

        async def replay() -> Message:
            return chunks.pop(0) if chunks else await receive()

        await self.app(scope, replay, send)

    async def _needed(self, message: Any) -> tuple[str, str] | None:
        """(scope, what needs it) for one JSON-RPC message, or None."""
        if not isinstance(message, dict):
            return None
        method = message.get("method")
        params = message.get("params")
        params = params if isinstance(params, dict) else {}
        if method == "tools/call":
            name = str(params.get("name", ""))
            if name in await self._read_only():
                return self.read_scope, f"the tool {_shown(name)}"
            return self.generate_scope, f"the tool {_shown(name)}"
        if (isinstance(method, str) and method.startswith(READ_PREFIXES)
                and method not in FREE_RESOURCE_METHODS):
            return self.read_scope, _shown(method)
        if method == "subscriptions/listen":
            wanted = params.get("notifications")
            wanted = wanted if isinstance(wanted, dict) else {}
            if wanted.get("resourceSubscriptions") or wanted.get("taskIds"):
                return self.read_scope, "subscribing to resource updates"
        return None

    async def _missing_scope(
        self, body: bytes, granted: set[str]
    ) -> tuple[str, str, Any] | None:
        """(scope, what needs it, JSON-RPC id) of the first call the token may not make."""
        try:  # the SDK parses with one or the other, depending on the protocol era
            parsed = json.loads(body)
        except ValueError:
            try:
                parsed = pydantic_core.from_json(body)
            except ValueError:
                return None  # JSON to neither: the SDK answers with a parse error
        for message in parsed if isinstance(parsed, list) else [parsed]:
            needed = await self._needed(message)
            if needed is not None and needed[0] not in granted:
                request_id = message.get("id")
                return *needed, request_id if isinstance(request_id, (str, int)) else None
        return None

    async def _read_only(self) -> frozenset[str]:
        """Tools annotated read-only; asked once (the declarations do not change)."""
        if self._read_only_tools is None:
            tools = await self.server.list_tools()
            self._read_only_tools = frozenset(
                t.name for t in tools if t.annotations and t.annotations.read_only_hint)
        return self._read_only_tools

    async def _too_large(self, send: Send) -> None:
        body = (f"Request body larger than {self.max_body} bytes; send large images as "
                "paths, ttapi://images/ URIs or URLs.").encode()
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def _refuse(
        self, send: Send, needed: str, what: str, request_id: Any, granted: list[str]
    ) -> None:
        """403 with the OAuth challenge in the header, and a JSON-RPC error in the body
        (MCP clients without an OAuth flow show its message to the user)."""
        description = f"{what} needs the scope {needed}; sign in again and grant it."
        challenge = (f'Bearer error="insufficient_scope", scope="{needed}", '
                     f'resource_metadata="{self.resource_metadata_url}", '
                     f'error_description="{description}"')
        have = ", ".join(sorted(granted)) or "none"
        body = json.dumps({"jsonrpc": "2.0", "id": request_id, "error": {
            "code": FORBIDDEN_CODE, "message": f"Forbidden: {description} This token "
            f"grants: {have}.", "data": {"error": "insufficient_scope", "scope": needed}},
        }).encode()
        await send({"type": "http.response.start", "status": 403, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", challenge.encode())]})
        await send({"type": "http.response.body", "body": body})
