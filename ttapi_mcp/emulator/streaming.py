"""Streamed E1/E2 answers (§11.4): server-sent events with partial images, then one
`completed` event per image, spread over the configured stream time.

Faults play out the ways a stream goes wrong: cut after the first partial, an event whose
JSON is broken, or a stream that ends without any `completed` event.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .models import Fault
from .render import RenderSpec, render
from .validate import ImageParams, usage_for


class StreamCut(Exception):
    """Ends the response body early: the client sees an incomplete chunked answer."""


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def stream_response(params: ImageParams, label: str, partials: int, seconds: float,
                    prefix: str, input_images: int, fault: Fault | None) -> Response:
    """``prefix``: ``image_generation`` (E1) or ``image_edit`` (E2)."""
    width, height = params.dims
    kind = fault.kind if fault is not None else None
    steps = max(1, params.n * (partials + 1))

    def fields() -> dict[str, Any]:
        return {"background": params.background, "created_at": int(time.time()),
                "output_format": params.output_format, "quality": params.quality,
                "size": params.size}

    async def events() -> AsyncIterator[bytes]:
        sent = 0
        for index in range(params.n):
            final = RenderSpec(prompt=params.prompt, model=label, width=width, height=height,
                               output_format=params.output_format,
                               transparent=params.background == "transparent",
                               compression=params.output_compression, index=index + 1,
                               count=params.n)
            for step in range(partials):
                await asyncio.sleep(seconds / steps)
                spec = dataclasses.replace(final, prompt=f"{params.prompt} (partial {step + 1})")
                data = base64.b64encode(await run_in_threadpool(render, spec)).decode()
                yield _event(f"{prefix}.partial_image", {
                    "type": f"{prefix}.partial_image", "b64_json": data,
                    "partial_image_index": step, **fields()})
                sent += 1
                if kind == "stream_cut" and sent == 1:
                    raise StreamCut
                if kind == "stream_malformed" and sent == 1:
                    yield b"event: " + prefix.encode() + b".partial_image\ndata: {\"b64_js\n\n"
            await asyncio.sleep(seconds / steps)
            if kind == "stream_no_completed":
                continue
            data = base64.b64encode(await run_in_threadpool(render, final)).decode()
            one = dataclasses.replace(params, n=1)
            yield _event(f"{prefix}.completed", {
                "type": f"{prefix}.completed", "b64_json": data, **fields(),
                "usage": usage_for(one, input_images)})

    return EventStream(events())


class EventStream(Response):
    """Sends each event as it is made; a :class:`StreamCut` stops without finishing the
    body, so the server drops the connection mid-answer (as a broken proxy does)."""

    def __init__(self, source: AsyncIterator[bytes]) -> None:
        super().__init__(media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self._source = source

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        try:
            async for chunk in self._source:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except StreamCut:
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})
