"""Reading a streamed E1/E2 answer (§11.4): server-sent events, parsed as they arrive.

Partial images go to a callback at once; `completed` events become the items of an
ordinary ImagesResponse. A stream that ends (or breaks) before every `completed` event
keeps what completed and says how many images are missing: they may have been billed.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2

PartialFn = Callable[[int, int, bytes], Awaitable[None]]
"""``on_partial(image_index, partial_index, image_bytes)``."""

MAX_EVENT_BYTES = 64 * 1024 * 1024
_SUMMED = ("input_tokens", "output_tokens", "total_tokens")


@dataclass
class StreamReader:
    """Feeds bytes in, fires ``on_partial`` per partial image, collects completed images."""

    expected: int
    on_partial: PartialFn | None = None
    completed: list[dict[str, Any]] = field(default_factory=list)
    partials: int = 0
    problems: list[str] = field(default_factory=list)
    _buffer: bytearray = field(default_factory=bytearray)
    _last: dict[str, Any] = field(default_factory=dict)

    async def feed(self, chunk: bytes) -> None:
        self._buffer += chunk.replace(b"\r\n", b"\n")
        while True:
            end = self._buffer.find(b"\n\n")
            if end < 0:
                if len(self._buffer) > MAX_EVENT_BYTES:
                    raise ValueError("a streamed event exceeds 64 MiB")
                return
            block = bytes(self._buffer[:end])
            del self._buffer[: end + 2]
            await self._event(block)

    async def _event(self, block: bytes) -> None:
        kind, data = "", []
        for line in block.decode("utf-8", errors="replace").split("\n"):
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        if not data:
            return
        try:
            payload = json.loads("\n".join(data))
        except ValueError:
            self.problems.append(f"a malformed {kind or 'unnamed'} event was skipped")
            return
        if not isinstance(payload, dict):
            return
        kind = str(payload.get("type") or kind)
        if kind.endswith(".partial_image"):
            await self._partial(payload)
        elif kind.endswith(".completed"):
            self.completed.append(payload)
            self._last = payload

    async def _partial(self, payload: dict[str, Any]) -> None:
        self.partials += 1
        index = payload.get("partial_image_index")
        if self.on_partial is None or not isinstance(payload.get("b64_json"), str):
            return
        try:
            image = base64.b64decode(payload["b64_json"], validate=True)
        except (binascii.Error, ValueError):
            self.problems.append("a partial image was not valid base64 and was skipped")
            return
        await self.on_partial(len(self.completed), index if isinstance(index, int) else 0, image)

    @property
    def missing(self) -> int:
        return max(0, self.expected - len(self.completed))

    def response(self) -> dict[str, Any]:
        """The completed images as an ImagesResponse body (usage summed over the images)."""
        usage: dict[str, int] = {}
        for event in self.completed:
            part = event.get("usage")
            if isinstance(part, dict):
                for key in _SUMMED:
                    if isinstance(part.get(key), int):
                        usage[key] = usage.get(key, 0) + part[key]
        body: dict[str, Any] = {
            "created": int(self._last.get("created_at") or 0),
            "data": [{"b64_json": e.get("b64_json")} for e in self.completed],
            "usage": usage or None,
        }
        for key in ("background", "output_format", "quality", "size"):
            body[key] = self._last.get(key)
        body["stream_missing"] = self.missing
        body["stream_problems"] = list(self.problems)
        return body


def reader_for(stream: bool | None, n: int | None, on_partial: PartialFn | None
            ) -> StreamReader | None:
    return StreamReader(expected=n or 1, on_partial=on_partial) if stream else None


async def read_events(response: httpx2.Response, reader: StreamReader) -> bytearray:
    """Parse the events as they come; a break keeps what completed (the rest is missing)."""
    try:
        async for chunk in response.aiter_bytes():
            await reader.feed(chunk)
    except (httpx2.TransportError, ValueError) as exc:
        reader.problems.append(f"the stream broke ({type(exc).__name__})")
    return bytearray(json.dumps(reader.response()).encode("utf-8"))
