"""The TTAPI HTTP client: one method per route of the wire contract (the job routes and
the account balance are in :mod:`.jobcalls`, the stream reader in :mod:`.streaming`).

One httpx2.AsyncClient lives as long as this object. The key goes only to TTAPI's API routes,
never to result URLs (they are on CDNs). Retries follow the contract's error catalogue: only
failures TTAPI cannot have processed are retried on POST, because a retried generation may be
charged twice.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import anyio
import httpx2

from ..keycheck import header_problem
from . import errors
from .b64values import load_json_b64_views
from .body import read_body
from .download import EXPIRED_HINT, save_stream
from .jobcalls import JobCallsMixin
from .models import (
    DownloadResult,
    EditRequest,
    GenerationRequest,
    ImagesResponse,
    LegacyDalle3Request,
    UploadFile,
)
from .multipart import SentFn, open_parts
from .parsing import (
    Call,
    error_for_status,
    find_failure,
    maybe_done_hint,
    parse_images,
    protocol_error,
    read_error,
    scrub,
)
from .policy import RetryPolicy, Timeouts, parse_retry_after
from .streaming import PartialFn, StreamReader, read_events, reader_for

logger = logging.getLogger("ttapi_mcp.api")

T = TypeVar("T")
_CONNECT_FAILURES = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout)
_ALWAYS_RETRY = frozenset({429, 499, 502, 503})
_IDEMPOTENT_RETRY = frozenset({500, 504})
_EXPIRED = frozenset({403, 404, 410})


class _Retryable(Exception):
    """Carries a failure the retry loop may try again, after `wait` s (None: backoff)."""

    def __init__(self, error: errors.TTAPIError, wait: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait = wait


class TTAPIClient(JobCallsMixin):
    """Async client for TTAPI's OpenAI image routes (E1-E5) and result downloads."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeouts: Timeouts = Timeouts(),  # noqa: B008 - frozen dataclass
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen dataclass
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        problem = header_problem(api_key.strip(), placeholders=False)
        if problem:
            # Sent as a header, such a key fails with an error that prints it.
            raise ValueError(f"The TTAPI key {problem}.")
        self._base_url = base_url.rstrip("/")
        self._key = api_key.strip()
        self._timeouts = timeouts
        self._retry = retry
        self._transport = transport
        self._client: httpx2.AsyncClient | None = None
        self._tls: ssl.SSLContext | None = None

    def prepare_tls(self) -> None:
        """Load the TLS trust store now (0.1-0.2 s of blocking work), meant for a worker
        thread while the server waits for its first call (see server/warmup.py)."""
        if self._client is None and self._tls is None:
            self._tls = httpx2.create_ssl_context()

    def prepare_pool(self) -> None:
        """Build the connection pool now (on the event loop, after :meth:`prepare_tls`),
        so the first call does not."""
        self._http  # noqa: B018 - the property builds it

    @property
    def _http(self) -> httpx2.AsyncClient:
        """The connection pool, built on first use.

        Building it loads the TLS trust store (0.1-0.2 s) unless :meth:`prepare_tls` did,
        which would otherwise delay every server start.
        """
        if self._client is None:
            self._client = httpx2.AsyncClient(
                base_url=self._base_url,
                headers={"Accept": "application/json", "User-Agent": "ttapi-mcp"},
                transport=self._transport,
                follow_redirects=False,
                verify=self._tls if self._tls is not None else True,
            )
        return self._client

    def __repr__(self) -> str:
        return f"TTAPIClient(base_url={self._base_url!r})"

    async def __aenter__(self) -> TTAPIClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (if it was ever opened)."""
        if self._client is not None:
            await self._client.aclose()

    # -- routes ---------------------------------------------------------------------------

    async def generate(
        self, request: GenerationRequest, on_partial: PartialFn | None = None
    ) -> ImagesResponse:
        """E1: create images (gpt-image-*, dall-e-2, dall-e-3).

        With ``request.stream`` the answer is read as server-sent events: ``on_partial`` gets
        each partial image as it arrives (a plain JSON answer is accepted too).
        """
        call = self._call("E1", "image generation")
        payload = await self._api(
            call,
            "POST",
            "/v1/images/generations",
            read_timeout=self._timeouts.for_model(request.model),
            json_body=request.to_wire(),
            stream=reader_for(request.stream, request.n, on_partial),
        )
        return parse_images(self._succeeded(call, payload), call)

    async def edit(
        self,
        request: EditRequest,
        images: list[UploadFile],
        mask: UploadFile | None = None,
        on_sent: SentFn | None = None,
        on_partial: PartialFn | None = None,
    ) -> ImagesResponse:
        """E2: edit images; files are streamed from disk as multipart parts.

        ``on_sent(sent, total)`` is called as the encoder reads the files (upload progress);
        ``on_partial`` as for :meth:`generate`.
        """
        call = self._call("E2", "image edit")
        payload = await self._api(
            call,
            "POST",
            "/v1/images/edits",
            read_timeout=self._timeouts.for_model(request.model),
            form=(request.to_form(), images, mask),
            on_sent=on_sent,
            stream=reader_for(request.stream, request.n, on_partial),
        )
        return parse_images(self._succeeded(call, payload), call)

    async def edit_by_url(
        self, request: EditRequest, image_urls: list[str], mask_url: str | None = None,
        on_partial: PartialFn | None = None,
    ) -> ImagesResponse:
        """E2 as JSON (§11.5): TTAPI fetches the images itself; nothing is uploaded."""
        call = self._call("E2", "image edit")
        body: dict[str, Any] = {
            **request.to_wire(), "images": [{"image_url": url} for url in image_urls]
        }
        if mask_url is not None:
            body["mask"] = {"image_url": mask_url}
        payload = await self._api(
            call,
            "POST",
            "/v1/images/edits",
            read_timeout=self._timeouts.for_model(request.model),
            json_body=body,
            stream=reader_for(request.stream, request.n, on_partial),
        )
        return parse_images(self._succeeded(call, payload), call)

    async def generate_legacy_dalle3(self, request: LegacyDalle3Request) -> ImagesResponse:
        """E3: the deprecated dall-e-3 route; its envelope is unwrapped."""
        call = self._call("E3", "dall-e-3 generation (legacy route)")
        payload = await self._api(
            call,
            "POST",
            "/openai/v1/images/generations",
            read_timeout=self._timeouts.dalle,
            json_body=request.to_wire(),
        )
        envelope = self._succeeded(call, payload)
        inner = envelope.get("data") if isinstance(envelope, dict) else None
        if inner is None:
            raise protocol_error(call, "the envelope has no data")
        return parse_images(inner, call)

    async def download(self, url: str, dest: Path, max_bytes: int) -> DownloadResult:
        """Save a result URL to `dest` (streamed, capped at `max_bytes`, atomic rename).

        Sent without the key: result URLs live on CDNs, not on TTAPI's API.
        """
        host = urlsplit(url).netloc or "the result host"
        timeout = httpx2.Timeout(
            connect=self._timeouts.connect,
            read=self._timeouts.download,
            write=self._timeouts.download,
            pool=self._timeouts.connect,
        )

        async def attempt(number: int) -> DownloadResult:
            started = time.monotonic()
            try:
                async with self._http.stream(
                    "GET",
                    url,
                    headers={"Accept": "image/*"},
                    timeout=timeout,
                    follow_redirects=True,
                ) as response:
                    self._log("GET", f"{host} (download)", response.status_code, number, started)
                    status = response.status_code
                    if status in _EXPIRED:
                        raise errors.DownloadError(
                            f"The result URL on {host} has expired or is gone",
                            status=status,
                            hint=EXPIRED_HINT,
                        )
                    if not response.is_success:
                        wait = self._wait_for(response)
                        failure = errors.DownloadError(
                            f"Downloading the result image from {host} failed" + _after(number),
                            status=status,
                            hint=_download_hint(wait),
                        )
                        if status in _ALWAYS_RETRY or status >= 500:
                            raise _Retryable(failure, wait)
                        raise failure
                    size = await save_stream(response, dest, max_bytes, host)
                    content_type = response.headers.get("Content-Type")
            except httpx2.HTTPError as exc:
                self._log("GET", f"{host} (download)", type(exc).__name__, number, started)
                raise _Retryable(
                    errors.DownloadError(
                        f"Downloading the result image from {host} failed{_after(number)} "
                        f"({type(exc).__name__}: {scrub(str(exc), self._key)})",
                        hint=_download_hint(None),
                    )
                ) from None
            media = content_type.split(";")[0].strip() if content_type else None
            return DownloadResult(path=dest, bytes=size, content_type=media)

        return await self._retrying(attempt)

    # -- plumbing -------------------------------------------------------------------------

    def _call(self, route: str, action: str) -> Call:
        return Call(route=route, action=action, api_key=self._key)

    def _succeeded(self, call: Call, payload: Any) -> Any:
        """The payload of a 2xx answer, unless its body says FAILED (a failure even on 200)."""
        failure = find_failure(payload, self._key)
        if failure is not None:
            raise error_for_status(200, failure, call)
        return payload

    async def _api(
        self,
        call: Call,
        method: str,
        path: str,
        *,
        read_timeout: float,
        json_body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        form: tuple[dict[str, str], list[UploadFile], UploadFile | None] | None = None,
        on_sent: SentFn | None = None,
        stream: StreamReader | None = None,
    ) -> Any:
        """Send an API request with retries; returns the decoded JSON of the 2xx answer."""
        timeout = httpx2.Timeout(
            connect=self._timeouts.connect,
            read=read_timeout,
            write=read_timeout,
            pool=self._timeouts.connect,
        )
        headers = {"TT-API-KEY": self._key, "Authorization": f"Bearer {self._key}"}
        content: bytes | None = None
        if json_body is not None:
            content = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json; charset=utf-8"

        async def attempt(number: int) -> Any:
            started = time.monotonic()
            try:
                with ExitStack() as stack:
                    send: dict[str, Any] = {"content": content, "params": params}
                    if form is not None:
                        fields, images, mask = form
                        send = {"data": fields, "files": open_parts(images, mask, stack, on_sent)}
                    response, body = await self._receive(
                        method, path, headers=headers, timeout=timeout, stream=stream, **send)
            except httpx2.HTTPError as exc:
                self._log(method, path, type(exc).__name__, number, started)
                raise self._transport_failure(call, exc, number, read_timeout) from None
            self._log(method, path, response.status_code, number, started)
            return self._answer(call, response, number, body)

        return await self._retrying(attempt)

    async def _receive(
        self, method: str, path: str, *, headers: dict[str, str], timeout: httpx2.Timeout,
        stream: StreamReader | None = None, **send: Any,
    ) -> tuple[httpx2.Response, bytearray]:
        """Send a request (``send``: its content, params or form) and read its answer into
        one buffer.

        Answers carry images as base64 (tens of MB for ten images), which stays in this
        buffer and is decoded from there: see :func:`load_json_b64_views`.
        """
        async with self._http.stream(
            method, path, headers=headers, timeout=timeout, **send
        ) as response:
            kind = response.headers.get("Content-Type", "")
            if stream is not None and response.is_success and kind.startswith("text/event-stream"):
                return response, await read_events(response, stream)
            body = await read_body(response)
        return response, body

    def _answer(self, call: Call, response: httpx2.Response, number: int, body: bytearray) -> Any:
        status = response.status_code
        if response.is_success:
            try:
                return load_json_b64_views(body)
            except ValueError:
                raise protocol_error(call, f"HTTP {status} with a body that is not JSON") from None
        wait = self._wait_for(response)
        failure = error_for_status(
            status,
            read_error(bytes(body), self._key),
            call,
            attempts=number,
            retry_after=wait,
        )
        if status in _ALWAYS_RETRY or (call.idempotent and status in _IDEMPOTENT_RETRY):
            raise _Retryable(failure, wait)
        raise failure

    def _transport_failure(
        self, call: Call, exc: httpx2.HTTPError, number: int, read_timeout: float
    ) -> Exception:
        detail = scrub(str(exc), self._key) or type(exc).__name__
        if isinstance(exc, _CONNECT_FAILURES):
            return _Retryable(
                errors.ConnectionFailedError(
                    f"Could not connect to TTAPI at {self._base_url} for the {call.action}"
                    f"{_after(number)} ({type(exc).__name__}: {detail})",
                    hint="Check the network connection and base_url",
                )
            )
        if not isinstance(exc, httpx2.TransportError):
            return errors.ConnectionFailedError(
                f"The {call.action} request could not be sent ({type(exc).__name__}: {detail})",
                hint="Check base_url",
            )
        if isinstance(exc, httpx2.TimeoutException):
            what = f"No response from TTAPI within {read_timeout:g} s for the {call.action}"
        else:
            what = (
                f"The connection to TTAPI broke before the {call.action} response was complete"
                f" ({type(exc).__name__}: {detail})"
            )
        billed = not call.idempotent
        failure = errors.ResponseTimeoutError(
            what + _after(number),
            may_have_been_billed=billed,
            hint=maybe_done_hint(call) if billed else "Fetch the job again",
        )
        return _Retryable(failure) if call.idempotent else failure

    def _wait_for(self, response: httpx2.Response) -> float | None:
        return parse_retry_after(response.headers.get("Retry-After"))

    async def _retrying(self, attempt: Callable[[int], Awaitable[T]]) -> T:
        """Run `attempt` until it succeeds, fails for good, or the retry budget is spent."""
        started = time.monotonic()
        number = 0
        while True:
            number += 1
            try:
                return await attempt(number)
            except _Retryable as retryable:
                if number >= self._retry.max_attempts:
                    raise retryable.error from None
                wait = retryable.wait
                if wait is not None and wait > self._retry.max_delay:
                    raise retryable.error from None  # its text states the requested wait
                delay = self._retry.backoff(number) if wait is None else wait
                if time.monotonic() - started + delay > self._retry.max_total_seconds:
                    raise retryable.error from None
                logger.info("retrying in %.2f s after attempt %d: %s", delay, number, retryable)
                await anyio.sleep(delay)

    def _log(self, method: str, path: str, outcome: object, number: int, started: float) -> None:
        logger.info(
            "%s %s -> %s (attempt %d, %.2f s)",
            method,
            path,
            outcome,
            number,
            time.monotonic() - started,
        )


def _after(number: int) -> str:
    return f" after {number} attempts" if number > 1 else ""


def _download_hint(wait: float | None) -> str:
    later = f"after the {wait:.0f} s the host asks for" if wait is not None else "soon"
    return f"Try the download again {later}, before the URL expires (about 60 minutes)"
