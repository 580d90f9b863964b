"""Error shapes of the contract (§6): OpenAI's `{"error": ...}` and TTAPI's envelope."""

from __future__ import annotations

import json
import secrets
from typing import Any, Literal

from starlette.responses import Response

Family = Literal["openai", "envelope", "text"]

# Default `type` and `code` per HTTP status, as in the §6 error table.
_STATUS_DEFAULTS: dict[int, tuple[str, str, str | None]] = {
    400: ("Bad request", "invalid_request_error", "invalid_value"),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    402: ("Insufficient balance: top up your TTAPI account.", "insufficient_quota",
          "insufficient_balance"),
    403: ("Forbidden", "invalid_request_error", None),
    404: ("Not found", "invalid_request_error", None),
    429: ("Rate limit exceeded, please retry later.", "rate_limit_error", "rate_limit_exceeded"),
    499: ("The TTAPI queue is exhausted, please retry later.", "server_error", None),
    500: ("The server had an error while processing your request.", "server_error", None),
    502: ("Bad gateway", "server_error", None),
    503: ("Service unavailable", "server_error", None),
    504: ("Gateway time-out", "server_error", None),
}


class ApiError(Exception):
    """A request the emulator refuses; rendered in the shape of the route's family."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = "invalid_value",
        param: str | None = None,
        type_: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type_
        self.headers = headers or {}


def family_of(path: str) -> Family:
    """`/v1/*` answers in OpenAI's shape, `/openai/*` in the envelope, anything else text."""
    if path.startswith("/v1/") or path == "/v1":
        return "openai"
    if path.startswith(("/openai/", "/midjourney/")) or path == "/openai":
        return "envelope"
    return "text"


def status_defaults(status: int) -> tuple[str, str, str | None]:
    """Message, type and code used when a fault or error does not set them."""
    if status in _STATUS_DEFAULTS:
        return _STATUS_DEFAULTS[status]
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return (f"HTTP {status}", kind, None)


class RawJSON:
    """A value already encoded as JSON text, put into the answer as it is.

    Images are megabytes of base64: escaping that text on every answer took ``json.dumps``
    10-20 ms, which made the emulator, not the client under test, the slow part of a call.
    """

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Compact UTF-8 JSON, as the real service sends it; :class:`RawJSON` values spliced in."""
    raws: list[bytes] = []
    nonce = secrets.token_hex(8)

    def placeholder(value: object) -> str:
        raws.append(_raw(value).data)
        return f"\x00raw:{nonce}:{len(raws) - 1}"

    data = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=placeholder).encode()
    markers = [json.dumps(f"\x00raw:{nonce}:{index}").encode() for index in range(len(raws))]
    if all(data.count(marker) == 1 for marker in markers):
        parts: list[bytes] = []
        for marker, raw in zip(markers, raws, strict=True):  # in the order they were made
            before, _, data = data.partition(marker)
            parts += [before, raw]
        data = b"".join([*parts, data])
    else:  # a text of the answer equals a placeholder: encode it all the slow way
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":"),
                          default=lambda value: json.loads(_raw(value).data)).encode()
    return Response(data, status_code=status, media_type="application/json", headers=headers)


def _raw(value: object) -> RawJSON:
    if not isinstance(value, RawJSON):
        raise TypeError(f"{type(value).__name__} is not JSON serializable")
    return value


UNAUTHORIZED_MESSAGE = "Wrong TT-API-KEY or email is not activated."
BLOCKED_MESSAGE = "Account Block"


def unauthorized_response() -> Response:
    """401 on every API route, ``/v1/*`` included: the envelope without ``data`` (§11.1)."""
    return json_response({"status": "FAILED", "message": UNAUTHORIZED_MESSAGE}, 401)


def blocked_response() -> Response:
    """403 "Account Block": the key is known but the account may not call (§11.1)."""
    return json_response({"status": "FAILED", "message": BLOCKED_MESSAGE, "data": None}, 403)


def error_response(err: ApiError, family: Family) -> Response:
    """Render an ApiError in the family's shape."""
    if family == "openai":
        body: Any = {
            "error": {"message": err.message, "type": err.type, "param": err.param,
                      "code": err.code}
        }
        return json_response(body, err.status, err.headers)
    if family == "envelope":
        return json_response({"status": "FAILED", "message": err.message, "data": None},
                             err.status, err.headers)
    return Response(err.message, status_code=err.status, media_type="text/plain",
                    headers=err.headers)
