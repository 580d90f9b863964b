"""TTAPIClient against the real emulator over HTTP on 127.0.0.1.

Attempt counts come from the emulator's request log, so every retry decision is observed on
the wire rather than inferred.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from PIL import Image

from ttapi_mcp.api import (
    AuthenticationError,
    ConnectionFailedError,
    ContentPolicyError,
    DownloadError,
    EditRequest,
    FourOJob,
    FourOSubmitRequest,
    GatewayTimeoutError,
    GenerationRequest,
    InsufficientBalanceError,
    InvalidRequestError,
    LegacyDalle3Request,
    NotFoundError,
    ProtocolError,
    RateLimitError,
    ResponseTimeoutError,
    RetryPolicy,
    Timeouts,
    TTAPIClient,
    TTAPIError,
    UploadFile,
    UpstreamServerError,
)
from ttapi_mcp.api.b64values import decode_base64
from ttapi_mcp.api.parsing import Call, parse_images, parse_job_id
from ttapi_mcp.emulator import Fault

CANARY = "sk-canary-7f3a9c21-do-not-leak"
FAST = RetryPolicy(base_delay=0.01)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(emulator: Any) -> AsyncIterator[TTAPIClient]:
    async with TTAPIClient(emulator.base_url, CANARY, retry=FAST) as api:
        yield api


def png_file(path: Path, size: tuple[int, int] = (64, 64), alpha_hole: bool = False) -> Path:
    image = Image.new("RGBA", size, (200, 40, 40, 255))
    if alpha_hole:
        image.paste((0, 0, 0, 0), (0, 0, size[0] // 2, size[1] // 2))
    image.save(path, format="PNG")
    return path


def gen(**fields: Any) -> GenerationRequest:
    return GenerationRequest(prompt=fields.pop("prompt", "draw a red cube"), **fields)


def assert_no_key(err: BaseException) -> None:
    assert CANARY not in str(err)
    assert CANARY not in repr(err)


# -- happy paths, every route ---------------------------------------------------------------


@pytest.mark.anyio
async def test_generate_gpt_returns_b64_usage_and_sends_only_set_fields(
    emulator: Any, client: TTAPIClient
) -> None:
    result = await client.generate(gen(model="gpt-image-1", prompt="画一只猫", quality="low"))

    assert len(result.data) == 1
    assert decode_base64(result.data[0].b64_json or "").startswith(PNG_MAGIC)
    assert result.usage is not None and result.usage.output_tokens == 272
    assert result.size == "1024x1024" and result.quality == "low"
    [record] = emulator.api_requests("E1")
    assert record.json == {"prompt": "画一只猫", "model": "gpt-image-1", "quality": "low"}
    assert record.headers["tt-api-key"] == "***"
    assert record.headers["authorization"] == "Bearer ***"
    assert record.headers["accept"] == "application/json"
    assert record.headers["content-type"].startswith("application/json")


@pytest.mark.anyio
async def test_generate_gpt_url_form_and_download_without_key(
    emulator: Any, client: TTAPIClient, tmp_path: Path
) -> None:
    emulator.options.gpt_url_form = True
    result = await client.generate(gen(model="gpt-image-1", output_format="webp"))

    item = result.data[0]
    assert item.url and item.b64_json is None and item.revised_prompt
    saved = await client.download(item.url, tmp_path / "out.webp", max_bytes=10_000_000)
    assert saved.path.read_bytes()[8:12] == b"WEBP"
    assert saved.bytes == saved.path.stat().st_size
    assert saved.content_type == "image/webp"
    [fetch] = emulator.api_requests("download")
    assert "tt-api-key" not in fetch.headers and "authorization" not in fetch.headers


@pytest.mark.anyio
async def test_generate_dalle2_url(emulator: Any, client: TTAPIClient, tmp_path: Path) -> None:
    result = await client.generate(gen(model="dall-e-2", n=2, size="256x256"))

    assert [bool(i.url) for i in result.data] == [True, True]
    saved = await client.download(result.data[1].url or "", tmp_path / "b.png", 10_000_000)
    with Image.open(saved.path) as image:
        assert image.size == (256, 256)


@pytest.mark.anyio
async def test_edit_streams_image_list_and_mask_as_parts(
    emulator: Any, client: TTAPIClient, tmp_path: Path
) -> None:
    first = png_file(tmp_path / "a.png", (80, 80))
    second = png_file(tmp_path / "b.png", (40, 40))
    mask = png_file(tmp_path / "m.png", (80, 80), alpha_hole=True)
    request = EditRequest(
        prompt="add a hat", model="gpt-image-1", n=2, output_format="jpeg", output_compression=70
    )
    result = await client.edit(
        request,
        [UploadFile(first, "a.png", "image/png"), UploadFile(second, "b.png", "image/png")],
        mask=UploadFile(mask, "m.png", "image/png"),
    )

    assert len(result.data) == 2
    assert decode_base64(result.data[0].b64_json or "")[:3] == b"\xff\xd8\xff"
    assert result.usage and result.usage.input_tokens_details
    assert (result.usage.input_tokens_details.image_tokens or 0) > 0
    [record] = emulator.api_requests("E2")
    assert record.files == [
        ("image[]", "a.png", "image/png", first.stat().st_size),
        ("image[]", "b.png", "image/png", second.stat().st_size),
        ("mask", "m.png", "image/png", mask.stat().st_size),
    ]
    assert record.form == {
        "prompt": "add a hat",
        "model": "gpt-image-1",
        "n": "2",
        "output_format": "jpeg",
        "output_compression": "70",
    }


@pytest.mark.anyio
async def test_edit_dalle2_single_image(emulator: Any, client: TTAPIClient, tmp_path: Path) -> None:
    image = png_file(tmp_path / "sq.png", (64, 64), alpha_hole=True)
    result = await client.edit(
        EditRequest(prompt="a sun", model="dall-e-2", size="256x256", response_format="b64_json"),
        [UploadFile(image, "sq.png", "image/png")],
    )
    assert result.data[0].b64_json
    assert [f[0] for f in emulator.api_requests("E2")[0].files] == ["image[]"]


@pytest.mark.anyio
async def test_legacy_dalle3_envelope_unwrapped(emulator: Any, client: TTAPIClient) -> None:
    result = await client.generate_legacy_dalle3(
        LegacyDalle3Request(prompt="a lighthouse", size="1024x1792", quality="hd")
    )
    assert result.data[0].url and result.data[0].revised_prompt
    [record] = emulator.api_requests("E3")
    assert record.json == {
        "prompt": "a lighthouse",
        "size": "1024x1792",
        "model": "dall-e-3",
        "quality": "hd",
    }


@pytest.mark.anyio
async def test_4o_submit_then_fetch_post_and_get(
    emulator: Any, client: TTAPIClient, tmp_path: Path
) -> None:
    emulator.options.job_seconds = 30
    job_id = await client.submit_4o(FourOSubmitRequest(prompt="draw a fox"))
    assert emulator.api_requests("E4")[0].json == {"prompt": "draw a fox"}

    queued = await client.fetch_4o(job_id)
    assert queued.job_id == job_id and not queued.is_terminal and queued.image_url is None

    emulator.options.job_seconds = 0
    done_job_id = await client.submit_4o(
        FourOSubmitRequest(prompt="draw a fox", refer_images=["https://example.com/r.png"])
    )
    assert emulator.api_requests("E4")[1].json["referImages"] == ["https://example.com/r.png"]
    done = await _wait_terminal(client, done_job_id)
    assert done.status == "SUCCESS" and done.quota == Decimal("2") and done.finish_time
    assert done.prompt == "draw a fox" and done.image_url
    saved = await client.download(done.image_url, tmp_path / "fox.png", 10_000_000)
    assert saved.bytes > 0
    fetches = emulator.api_requests("E5")
    assert fetches[0].method == "POST" and fetches[0].json == {"jobId": job_id}
    assert fetches[-1].method == "GET" and fetches[-1].query == {"jobId": done_job_id}


async def _wait_terminal(client: TTAPIClient, job_id: str) -> FourOJob:
    for _ in range(100):
        job = await client.fetch_4o(job_id, method="GET")
        if job.is_terminal:
            return job
        await anyio.sleep(0.05)
    raise AssertionError("job did not finish")


@pytest.mark.anyio
async def test_4o_failed_job_is_a_job_not_an_error(emulator: Any, client: TTAPIClient) -> None:
    emulator.options.job_seconds = 0
    emulator.options.job_outcome = "failed"
    job = await _wait_terminal(client, await client.submit_4o(FourOSubmitRequest(prompt="x")))
    assert job.status == "FAILED" and job.message == "job failed" and job.quota == Decimal(0)


# -- error shapes -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_openai_shape_error_names_param_and_is_not_retried(
    emulator: Any, client: TTAPIClient
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await client.generate(gen(model="gpt-image-1", size="1024x1024 "))
    err = info.value
    assert err.status == 400 and err.param == "size" and err.code == "invalid_value"
    assert not err.may_have_been_billed
    assert "1024x1024 " in str(err) and "size" in str(err) and "nothing was billed" in str(err)
    assert len(emulator.api_requests("E1")) == 1


@pytest.mark.anyio
async def test_envelope_error_on_legacy_route(emulator: Any, client: TTAPIClient) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await client.generate_legacy_dalle3(LegacyDalle3Request(prompt="x", size="512x512"))
    assert "must be one of" in (info.value.upstream_message or "")


@pytest.mark.anyio
async def test_envelope_shape_on_v1_route(emulator: Any, client: TTAPIClient) -> None:
    emulator.add_fault(Fault(route="E1", status=400, shape="envelope", message="bad prompt"))
    with pytest.raises(InvalidRequestError) as info:
        await client.generate(gen(model="dall-e-3"))
    assert info.value.upstream_message == "bad prompt"


@pytest.mark.anyio
async def test_failed_envelope_with_http_200_is_a_failure(
    emulator: Any, client: TTAPIClient
) -> None:
    emulator.add_fault(Fault(route="E1", status=200, shape="envelope", message="upstream busy"))
    with pytest.raises(InvalidRequestError) as info:
        await client.generate(gen(model="gpt-image-1"))
    assert info.value.status == 200 and info.value.may_have_been_billed
    assert "upstream busy" in str(info.value)


@pytest.mark.anyio
async def test_4o_submit_empty_message_gets_fallback(emulator: Any, client: TTAPIClient) -> None:
    emulator.add_fault(Fault(route="E4", status=400, shape="envelope", message=""))
    with pytest.raises(InvalidRequestError) as info:
        await client.submit_4o(FourOSubmitRequest(prompt="draw"))
    assert "TTAPI rejected the request (HTTP 400, no message)" in str(info.value)


@pytest.mark.anyio
async def test_empty_and_text_bodies(emulator: Any, client: TTAPIClient) -> None:
    emulator.add_fault(Fault(route="E1", status=400, shape="empty"))
    with pytest.raises(InvalidRequestError) as info:
        await client.generate(gen(model="dall-e-2"))
    assert "HTTP 400 from TTAPI" in str(info.value)

    emulator.add_fault(Fault(route="E1", status=418, shape="text", message="<html>" + "x" * 900))
    with pytest.raises(TTAPIError) as other:
        await client.generate(gen(model="dall-e-2"))
    assert other.value.status == 418
    assert len(other.value.upstream_message or "") == 500


@pytest.mark.anyio
@pytest.mark.parametrize("code", ["content_policy_violation", "moderation_blocked"])
async def test_safety_block(emulator: Any, client: TTAPIClient, code: str) -> None:
    emulator.add_fault(Fault(route="E1", status=400, code=code, message="blocked"))
    with pytest.raises(ContentPolicyError) as info:
        await client.generate(gen(model="gpt-image-1"))
    assert info.value.code == code and "rephrase" in str(info.value)


@pytest.mark.anyio
async def test_401_with_canary_key_never_leaks(emulator: Any, client: TTAPIClient) -> None:
    emulator.options.api_keys = ["the-right-key"]
    with pytest.raises(AuthenticationError) as info:
        await client.generate(gen(model="gpt-image-1"))
    assert "TTAPI_API_KEY" in str(info.value) and info.value.status == 401
    assert_no_key(info.value)
    assert len(emulator.api_requests("E1")) == 1


@pytest.mark.anyio
async def test_key_echoed_by_upstream_is_scrubbed(emulator: Any, client: TTAPIClient) -> None:
    emulator.add_fault(
        Fault(route="E1", status=400, message=f"unknown key {CANARY}", code=CANARY, count=1)
    )
    with pytest.raises(InvalidRequestError) as info:
        await client.generate(gen(model="gpt-image-1"))
    assert_no_key(info.value)
    assert "[redacted]" in str(info.value)
    emulator.add_fault(Fault(route="E1", status=503, shape="text", message=CANARY, count=3))
    with pytest.raises(UpstreamServerError) as again:
        await client.generate(gen(model="gpt-image-1"))
    assert_no_key(again.value)


@pytest.mark.anyio
async def test_402_says_top_up(emulator: Any, client: TTAPIClient) -> None:
    emulator.add_fault(Fault(route="E1", status=402))
    with pytest.raises(InsufficientBalanceError) as info:
        await client.generate(gen(model="gpt-image-1"))
    assert "Top up the TTAPI balance" in str(info.value)
    assert len(emulator.api_requests("E1")) == 1


@pytest.mark.anyio
async def test_unknown_job_is_not_found(emulator: Any, client: TTAPIClient) -> None:
    with pytest.raises(NotFoundError) as info:
        await client.fetch_4o("no-such-job")
    assert "job not found" in str(info.value) and "unknown, not failed" in str(info.value)
    assert len(emulator.api_requests("E5")) == 1


# -- retries and faults ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_503_twice_then_success_is_three_requests(emulator: Any, client: TTAPIClient) -> None:
    emulator.add_fault(Fault(route="E1", status=503, count=2))
    result = await client.generate(gen(model="gpt-image-1"))
    assert result.data
    assert [r.status for r in emulator.api_requests("E1")] == [503, 503, 200]


@pytest.mark.anyio
async def test_499_and_502_are_retried_up_to_the_bound(emulator: Any, client: TTAPIClient) -> None:
    emulator.add_fault(Fault(route="E1", status=499, count=1))
    emulator.add_fault(Fault(route="E1", status=502, count=5))
    with pytest.raises(UpstreamServerError) as info:
        await client.generate(gen(model="gpt-image-1"))
    assert "after 3 attempts" in str(info.value) and not info.value.may_have_been_billed
    assert [r.status for r in emulator.api_requests("E1")] == [499, 502, 502]


@pytest.mark.anyio
async def test_total_time_budget_bounds_retries(emulator: Any) -> None:
    emulator.add_fault(Fault(route="E1", status=503, count=3))
    policy = RetryPolicy(base_delay=0.01, max_total_seconds=0.0)
    async with TTAPIClient(emulator.base_url, CANARY, retry=policy) as api:
        with pytest.raises(UpstreamServerError):
            await api.generate(gen(model="gpt-image-1"))
    assert len(emulator.api_requests("E1")) == 1


@pytest.mark.anyio
async def test_download_rate_limit_above_cap_fails_at_once(
    emulator: Any, client: TTAPIClient, tmp_path: Path
) -> None:
    url = await _dalle_url(client)
    emulator.add_fault(Fault(route="download", status=429, retry_after="600", count=3))
    with pytest.raises(DownloadError) as info:
        await client.download(url, tmp_path / "slow.png", 10_000_000)
    assert info.value.status == 429 and "600 s" in str(info.value)
    assert len(emulator.api_requests("download")) == 1


@pytest.mark.anyio
async def test_500_on_post_is_never_retried(emulator: Any, client: TTAPIClient) -> None:
    emulator.add_fault(Fault(route="E1", status=500, count=3))
    with pytest.raises(UpstreamServerError) as info:
        await client.generate(gen(model="gpt-image-1"))
    assert info.value.may_have_been_billed and "do not simply retry" in str(info.value).lower()
    assert len(emulator.api_requests("E1")) == 1


@pytest.mark.anyio
async def test_500_and_504_on_fetch_are_retried(emulator: Any, client: TTAPIClient) -> None:
    emulator.options.job_seconds = 30
    job_id = await client.submit_4o(FourOSubmitRequest(prompt="draw a fox"))
    emulator.add_fault(Fault(route="E5", status=500))
    emulator.add_fault(Fault(route="E5", status=504))
    job = await client.fetch_4o(job_id)
    assert job.job_id == job_id
    assert [r.status for r in emulator.api_requests("E5")] == [500, 504, 200]


@pytest.mark.anyio
async def test_429_retry_after_zero_is_retried(emulator: Any, client: TTAPIClient) -> None:
    emulator.add_fault(Fault(route="E1", status=429, retry_after="0"))
    await client.generate(gen(model="gpt-image-1"))
    assert [r.status for r in emulator.api_requests("E1")] == [429, 200]


@pytest.mark.anyio
@pytest.mark.parametrize("in_date_form", [False, True])
async def test_429_retry_after_above_cap_fails_at_once(
    emulator: Any, client: TTAPIClient, in_date_form: bool
) -> None:
    later = datetime.now(timezone.utc) + timedelta(seconds=125)
    header = format_datetime(later, usegmt=True) if in_date_form else "120"
    emulator.add_fault(Fault(route="E1", status=429, retry_after=header, count=3))
    with pytest.raises(RateLimitError) as info:
        await client.generate(gen(model="gpt-image-1"))
    assert info.value.retry_after is not None and info.value.retry_after > 100
    assert "wait 1" in str(info.value) and not info.value.may_have_been_billed
    assert len(emulator.api_requests("E1")) == 1


@pytest.mark.anyio
async def test_504_is_not_retried_and_may_be_billed(
    emulator: Any, client: TTAPIClient, tmp_path: Path
) -> None:
    emulator.add_fault(Fault(route="E2", status=504, count=3))
    image = png_file(tmp_path / "e.png")
    with pytest.raises(GatewayTimeoutError) as info:
        await client.edit(
            EditRequest(prompt="p", model="gpt-image-1"), [UploadFile(image, "e.png", "image/png")]
        )
    text = str(info.value)
    assert info.value.may_have_been_billed and "been billed" in text
    assert "https://api.ttapi.org" in text and "HTTP 504" in text
    assert len(emulator.api_requests("E2")) == 1


@pytest.mark.anyio
async def test_dropped_response_is_not_retried(emulator: Any, client: TTAPIClient) -> None:
    emulator.add_fault(Fault(route="E1", kind="drop", count=3))
    with pytest.raises(ResponseTimeoutError) as info:
        await client.generate(gen(model="gpt-image-1"))
    assert info.value.may_have_been_billed
    assert len(emulator.api_requests("E1")) == 1


@pytest.mark.anyio
async def test_dropped_fetch_is_retried(emulator: Any, client: TTAPIClient) -> None:
    job_id = await client.submit_4o(FourOSubmitRequest(prompt="draw"))
    emulator.add_fault(Fault(route="E5", kind="drop"))
    assert (await client.fetch_4o(job_id)).job_id == job_id
    assert len(emulator.api_requests("E5")) == 2


@pytest.mark.anyio
async def test_read_timeout_is_not_retried(emulator: Any) -> None:
    # One slow answer only: a retry would be answered at once and logged with HTTP 200.
    emulator.add_fault(Fault(route="E1", kind="slow", delay=0.6, count=1))
    timeouts = Timeouts(gpt=0.1)
    async with TTAPIClient(emulator.base_url, CANARY, timeouts=timeouts, retry=FAST) as api:
        with pytest.raises(ResponseTimeoutError) as info:
            await api.generate(gen(model="gpt-image-1"))
    assert info.value.may_have_been_billed and "do not simply retry" in str(info.value).lower()
    assert "https://api.ttapi.org" in str(info.value)
    await anyio.sleep(0.8)  # let the abandoned slow answer finish on the emulator's side
    assert [r.status for r in emulator.api_requests("E1") if r.status == 200] == []
    assert emulator.faults.pending() == []


@pytest.mark.anyio
async def test_malformed_json_on_200_is_protocol_error(emulator: Any, client: TTAPIClient) -> None:
    emulator.add_fault(Fault(route="E1", kind="malformed_json", count=3))
    with pytest.raises(ProtocolError) as info:
        await client.generate(gen(model="gpt-image-1"))
    assert info.value.may_have_been_billed
    assert len(emulator.api_requests("E1")) == 1


@pytest.mark.anyio
async def test_connect_failure_is_retried_then_reported() -> None:
    port = closed_port()
    async with TTAPIClient(f"http://127.0.0.1:{port}", CANARY, retry=FAST) as api:
        with pytest.raises(ConnectionFailedError) as info:
            await api.generate(gen(model="gpt-image-1"))
    assert "after 3 attempts" in str(info.value) and "nothing was billed" in str(info.value)
    assert_no_key(info.value)


def closed_port() -> int:
    """A loopback port that nothing listens on (bound, never listened, released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- downloads --------------------------------------------------------------------------------


async def _dalle_url(client: TTAPIClient) -> str:
    result = await client.generate(gen(model="dall-e-2", size="256x256"))
    return result.data[0].url or ""


@pytest.mark.anyio
async def test_download_size_cap_removes_partial_file(
    emulator: Any, client: TTAPIClient, tmp_path: Path
) -> None:
    url = await _dalle_url(client)
    with pytest.raises(DownloadError) as info:
        await client.download(url, tmp_path / "big.png", max_bytes=100)
    assert "100-byte limit" in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.anyio
async def test_download_expired_url(emulator: Any, client: TTAPIClient, tmp_path: Path) -> None:
    url = await _dalle_url(client)
    emulator.add_fault(Fault(route="download", kind="expired_url"))
    with pytest.raises(DownloadError) as info:
        await client.download(url, tmp_path / "gone.png", 10_000_000)
    assert info.value.status == 403 and "expired" in str(info.value)
    assert "fetch the job again" in str(info.value)
    assert len(emulator.api_requests("download")) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.anyio
async def test_download_unknown_url(emulator: Any, client: TTAPIClient, tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as info:
        await client.download(f"{emulator.base_url}/files/nope.png", tmp_path / "x.png", 1000)
    assert info.value.status == 404


@pytest.mark.anyio
async def test_download_retries_server_errors(
    emulator: Any, client: TTAPIClient, tmp_path: Path
) -> None:
    url = await _dalle_url(client)
    emulator.add_fault(Fault(route="download", status=500))
    emulator.add_fault(Fault(route="download", kind="drop"))
    saved = await client.download(url, tmp_path / "ok.png", 10_000_000)
    assert saved.path.read_bytes().startswith(PNG_MAGIC)
    assert len(emulator.api_requests("download")) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["ok.png"]


# -- logging ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_logs_method_path_status_attempt_without_key(
    emulator: Any, client: TTAPIClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    emulator.add_fault(Fault(route="E1", status=503))
    await client.generate(gen(model="gpt-image-1"))
    messages = [r.getMessage() for r in caplog.records if r.name == "ttapi_mcp.api"]
    assert any("POST /v1/images/generations -> 503 (attempt 1" in m for m in messages)
    assert any("POST /v1/images/generations -> 200 (attempt 2" in m for m in messages)
    assert CANARY not in caplog.text


# -- parsing literal upstream bodies ----------------------------------------------------------

CALL = Call(route="E4", action="test", api_key=CANARY)


def test_call_repr_hides_the_key() -> None:
    assert CANARY not in repr(CALL)


def test_job_id_falls_back_to_snake_case() -> None:
    body = {"status": "SUCCESS", "message": "success", "data": {"job_id": "abc-123"}}
    assert parse_job_id(body, CALL) == "abc-123"
    with pytest.raises(ProtocolError):
        parse_job_id({"status": "SUCCESS", "message": "success", "data": {}}, CALL)


def test_image_item_without_b64_or_url_is_protocol_error() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_images({"created": 1, "data": [{"revised_prompt": "x"}]}, CALL)
    assert "neither b64_json nor url" in str(info.value)


def test_images_response_tolerates_unknown_fields_and_odd_usage() -> None:
    body = {"created": 1, "data": [{"url": "https://cdn/x.png", "extra": 1}], "usage": "?"}
    parsed = parse_images(body, CALL)
    assert parsed.usage is None and parsed.data[0].url == "https://cdn/x.png"


def test_job_object_tolerates_unknown_status_and_numeric_quota() -> None:
    job = FourOJob.model_validate(
        {
            "status": "RENDERING",
            "jobId": "j1",
            "message": None,
            "new": True,
            "data": {"quota": 2.5, "imageUrl": None, "other": "x"},
        }
    )
    assert not job.is_terminal and job.quota == Decimal("2.5") and job.job_id == "j1"


def test_requests_serialize_without_nulls_and_with_aliases() -> None:
    submit = FourOSubmitRequest(prompt="p", hook_url="https://h.example/x")
    assert submit.to_wire() == {"prompt": "p", "hookUrl": "https://h.example/x"}
    with pytest.raises(ValueError):
        GenerationRequest(prompt="p", model="m", colour="red")  # type: ignore[call-arg]


def test_error_text_is_a_full_sentence() -> None:
    err = InvalidRequestError(
        "TTAPI image generation failed",
        status=400,
        upstream_message="bad",
        param="size",
        hint="Correct the 'size' parameter and try again",
    )
    assert str(err) == (
        "TTAPI image generation failed. TTAPI answered HTTP 400 (parameter size): bad. "
        "It was not processed, so nothing was billed. "
        "Correct the 'size' parameter and try again."
    )
