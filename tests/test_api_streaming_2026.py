"""The client reads streamed E1/E2 answers (§11.4) from the emulator: partials as they come,
completed images as an ImagesResponse, and every way a stream can go wrong."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from ttapi_mcp.api import (
    EditRequest,
    GenerationRequest,
    RetryPolicy,
    TTAPIClient,
    UploadFile,
    decode_base64,
)
from ttapi_mcp.emulator import Fault

pytestmark = pytest.mark.anyio
CANARY = "sk-canary-stream-do-not-leak"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(emulator: Any) -> AsyncIterator[TTAPIClient]:
    emulator.options.stream_seconds = 0.05
    async with TTAPIClient(emulator.base_url, CANARY, retry=RetryPolicy(base_delay=0.01)) as api:
        yield api


def _streamed(n: int = 1, partials: int = 2) -> GenerationRequest:
    return GenerationRequest(prompt="a stream", model="gpt-image-1", quality="low",
                             size="1024x1024", n=n, stream=True, partial_images=partials)


async def test_partials_arrive_before_the_completed_images(client: TTAPIClient) -> None:
    seen: list[tuple[int, int, bytes]] = []

    async def on_partial(image: int, partial: int, data: bytes) -> None:
        seen.append((image, partial, data))

    response = await client.generate(_streamed(n=2), on_partial)
    assert [(i, p) for i, p, _ in seen] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert all(data.startswith(b"\x89PNG") for _, _, data in seen)
    assert len(response.data) == 2 and response.stream_missing == 0
    assert decode_base64(response.data[0].b64_json or "").startswith(b"\x89PNG")
    assert response.usage is not None and response.usage.output_tokens
    assert response.size == "1024x1024"


async def test_a_plain_json_answer_to_a_streamed_request_is_accepted(
    emulator: Any, client: TTAPIClient
) -> None:
    emulator.options.ignore_stream = True
    response = await client.generate(_streamed(n=2))
    assert len(response.data) == 2 and response.stream_missing == 0


@pytest.mark.parametrize(("kind", "completed", "problem"), [
    ("stream_cut", 0, "the stream broke"),
    ("stream_no_completed", 0, None),
    ("stream_malformed", 2, "malformed"),
])
async def test_broken_streams_keep_what_completed(
    emulator: Any, client: TTAPIClient, kind: str, completed: int, problem: str | None
) -> None:
    emulator.add_fault(Fault(route="E1", kind=kind))  # type: ignore[arg-type]
    response = await client.generate(_streamed(n=2))
    assert len(response.data) == completed
    assert response.stream_missing == 2 - completed
    if problem:
        assert any(problem in p for p in response.stream_problems), response.stream_problems
    assert len(emulator.api_requests("E1")) == 1  # never resent: it may have been billed


async def test_streamed_edit(client: TTAPIClient, tmp_path: Path) -> None:
    path = tmp_path / "in.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(path)
    seen: list[int] = []

    async def on_partial(image: int, partial: int, data: bytes) -> None:
        seen.append(partial)

    request = EditRequest(prompt="p", model="gpt-image-1", quality="low", size="1024x1024",
                          stream=True, partial_images=1)
    response = await client.edit(request, [UploadFile(path, "in.png", "image/png")],
                                 on_partial=on_partial)
    assert seen == [0] and len(response.data) == 1
