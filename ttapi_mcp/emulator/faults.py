"""Fault injection: queued misbehaviours per route and the responses that play them out."""

from __future__ import annotations

import base64
import json
import threading
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .models import Fault
from .shapes import ApiError, Family, error_response, json_response, status_defaults


class FaultQueue:
    """Faults waiting for their route; each request of that route consumes one use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[list[Any]] = []  # [fault, remaining uses]

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append([fault, fault.count])

    def take(self, route: str) -> Fault | None:
        """The first pending fault for `route`, consuming one of its uses."""
        with self._lock:
            for entry in self._faults:
                if entry[0].route == route and entry[1] > 0:
                    entry[1] -= 1
                    if entry[1] == 0:
                        self._faults.remove(entry)
                    fault: Fault = entry[0]
                    return fault
        return None

    def pending(self) -> list[Fault]:
        with self._lock:
            return [entry[0] for entry in self._faults]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


def status_fault_response(fault: Fault, family: Family) -> Response:
    """The error a `status` fault answers with, in the requested or the family's shape."""
    status = fault.status or 500
    message, type_, code = status_defaults(status)
    headers: dict[str, str] = {}
    retry_after = fault.retry_after
    if retry_after is None and status == 429:
        retry_after = "1"
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    shape = fault.shape or family
    text = fault.message if fault.message is not None else message
    if shape == "empty":
        return Response(b"", status_code=status, headers=headers)
    err = ApiError(status, text, code=fault.code if fault.code is not None else code,
                   type_=type_, headers=headers)
    return error_response(err, "text" if shape == "text" else shape)


def malformed_json_response(original: Response) -> Response:
    """HTTP 200 whose JSON body is cut in half (a broken gateway after billing)."""
    body = bytes(original.body) if original.status_code < 300 else b""
    if len(body) < 8:
        body = b'{"created": 1700000000, "data": [{"b64_json": "iVBORw0KGgoAAAANSUhEUg=="}]}'
    return Response(body[: len(body) // 2], status_code=200, media_type="application/json")


def _cut(b64: str) -> str:
    # A length of 4k+1 is never valid base64, whatever the padding policy of the decoder.
    keep = (len(b64) // 2) // 4 * 4 + 1
    return b64[:keep]


def _cut_image(b64: str) -> str:
    """Valid base64 of the first half of the image: only a check of the image finds it."""
    data = base64.b64decode(b64)
    return base64.b64encode(data[: len(data) // 2]).decode("ascii")


def truncated_b64_response(original: Response, cut_image: bool = False) -> Response:
    """The same answer with the last `b64_json` item cut short; other items stay intact.

    ``cut_image``: the base64 text stays valid and only the image it holds is cut.
    """
    try:
        body = json.loads(bytes(original.body))
    except ValueError:
        return original
    holder = body.get("data") if isinstance(body, dict) else None
    if isinstance(holder, dict):  # E3's envelope nests the ImagesResponse
        holder = holder.get("data")
    if isinstance(holder, list):
        for item in reversed(holder):
            if isinstance(item, dict) and isinstance(item.get("b64_json"), str):
                cut = _cut_image if cut_image else _cut
                item["b64_json"] = cut(item["b64_json"])
                break
    return json_response(body, original.status_code)


class DroppedResponse(Response):
    """Sends the headers and half the body, then stops without completing the response.

    The ASGI server closes the connection, so the client sees a reset mid-body, as with a
    proxy that gives up.
    """

    def __init__(self, original: Response) -> None:
        super().__init__(bytes(original.body), status_code=original.status_code,
                         media_type=original.media_type)
        self.raw_headers = [(k, v) for k, v in original.raw_headers if k != b"content-length"]
        self.raw_headers.append((b"content-length", str(max(len(self.body), 2)).encode()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": bytes(self.body[: len(self.body) // 2]),
                    "more_body": True})
        # Returning now leaves the response incomplete: the server closes the connection.
