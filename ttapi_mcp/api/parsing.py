"""Reading TTAPI bodies: the three error shapes, results, job ids, and status → exception.

TTAPI's error shape is undocumented per route, so every body is tried as OpenAI's
`{"error": {...}}` (shape A), then TTAPI's envelope with `status: FAILED` (shape B, a failure
even on HTTP 200), then anything else (shape C: text, HTML, empty, truncated).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from . import errors
from .models import FourOJob, ImagesResponse

SHAPE_C_LIMIT = 500
SLOW_GPT_HINT = "for slow gpt-image-1 calls consider base_url https://api.ttapi.org"
SAFETY_CODES = frozenset({"content_policy_violation", "moderation_blocked"})
NOT_JSON = object()
SUBMIT_ROUTES = frozenset({"E4", "A1"})
FETCH_ROUTES = frozenset({"E5", "A2"})


@dataclass(frozen=True)
class Call:
    """What the client was doing, so errors can say it and judge billing and retries."""

    route: str  # E1..E5; A1/A2: the async GPT route's submit and fetch (§11.6)
    action: str  # e.g. "image generation"
    api_key: str = field(repr=False)

    @property
    def idempotent(self) -> bool:
        """Only the job fetches and the balance check can be repeated without risk of a
        second charge."""
        return self.route in FETCH_ROUTES or self.route == "M1"

    @property
    def submits_job(self) -> bool:
        return self.route in SUBMIT_ROUTES

    @property
    def slow_hint(self) -> str:
        return f"; {SLOW_GPT_HINT}" if self.route in ("E1", "E2") else ""


@dataclass(frozen=True)
class UpstreamError:
    """An error as TTAPI worded it, already scrubbed of the key."""

    message: str | None
    code: str | None = None
    param: str | None = None


def scrub(text: str | None, secret: str) -> str | None:
    """Remove the key from text that came from outside (upstream may echo it back)."""
    if text is None or not secret:
        return text
    return text.replace(secret, "[redacted]")


def load_json(body: bytes) -> Any:
    """The decoded JSON body, or the `NOT_JSON` marker (JSON `null` is a valid value)."""
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return NOT_JSON


def find_failure(payload: Any, secret: str) -> UpstreamError | None:
    """Shape A or B inside a JSON payload, else None."""
    if not isinstance(payload, dict):
        return None
    err = payload.get("error")
    if isinstance(err, dict):
        return UpstreamError(
            message=scrub(_text(err.get("message")), secret),
            code=scrub(_text(err.get("code")), secret),
            param=scrub(_text(err.get("param")), secret),
        )
    if payload.get("status") == "FAILED":
        return UpstreamError(message=scrub(_text(payload.get("message")), secret))
    return None


def read_error(body: bytes, secret: str) -> UpstreamError:
    """Any error body in shape A, B or C."""
    payload = load_json(body)
    found = find_failure(payload, secret)
    if found is not None:
        return found
    text = body.decode("utf-8", errors="replace").strip()[:SHAPE_C_LIMIT]
    return UpstreamError(message=scrub(text, secret) or None)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def error_for_status(
    status: int,
    upstream: UpstreamError,
    call: Call,
    *,
    attempts: int = 1,
    retry_after: float | None = None,
) -> errors.TTAPIError:
    """The exception for an HTTP failure (or a FAILED body with a 2xx status)."""
    message = upstream.message
    if not message:
        message = (
            f"TTAPI rejected the request (HTTP {status}, no message)"
            if status == 400 and call.submits_job
            else f"HTTP {status} from TTAPI"
        )
    what = f"TTAPI {call.action} failed"
    if attempts > 1:
        what += f" after {attempts} attempts"
    maybe_billed = not call.idempotent
    kind: type[errors.TTAPIError]
    billed = False
    if 200 <= status < 300 or status == 400:
        safety = upstream.code in SAFETY_CODES
        kind = errors.ContentPolicyError if safety else errors.InvalidRequestError
        billed = 200 <= status < 300 and maybe_billed and not call.submits_job
        if safety:
            hint = "The safety system blocked the prompt or images; rephrase them and try again"
        elif upstream.param:
            hint = f"Correct the '{upstream.param}' parameter and try again"
        else:
            hint = "Correct the request and try again; do not resend it unchanged"
    elif status == 401:
        kind = errors.AuthenticationError
        hint = "Check TTAPI_API_KEY: the key is missing, mistyped or not allowed"
    elif status == 403:
        kind = errors.AccountBlockedError
        what = "The TTAPI account is blocked; contact TTAPI"
        hint = "Retrying will not help: ask TTAPI support to lift the block"
    elif status == 402:
        kind = errors.InsufficientBalanceError
        hint = "Top up the TTAPI balance, then try again"
    elif status == 404:
        kind = errors.NotFoundError
        hint = (
            "TTAPI does not know this job id (unknown, not failed); check the id"
            if call.route in FETCH_ROUTES
            else "Check base_url: it must be TTAPI's origin, e.g. https://api.ttapi.io, without /v1"
        )
    elif status == 429:
        return errors.RateLimitError(
            what,
            retry_after=retry_after,
            status=status,
            upstream_message=message,
            code=upstream.code,
            param=upstream.param,
            hint=_rate_hint(retry_after),
        )
    elif status in (499, 502, 503):
        kind = errors.UpstreamServerError
        hint = "TTAPI or its upstream is busy or unavailable; try again in a few minutes"
    elif status == 504 or status >= 500:
        kind = errors.GatewayTimeoutError if status == 504 else errors.UpstreamServerError
        billed = maybe_billed
        hint = maybe_done_hint(call) if billed else "Try again later"
    else:
        kind = errors.InvalidRequestError
        hint = "Correct the request and try again"
    return kind(
        what,
        status=status,
        upstream_message=message,
        code=upstream.code,
        param=upstream.param,
        may_have_been_billed=billed,
        hint=hint,
    )


def _rate_hint(retry_after: float | None) -> str:
    if retry_after is None:
        return "TTAPI is rate limiting; wait a minute and try again"
    return f"TTAPI asks to wait {retry_after:.0f} s; try again after that"


def maybe_done_hint(call: Call) -> str:
    """Next step after a failure that TTAPI may have processed."""
    if call.submits_job:
        return (
            "Do not simply resubmit: a job may exist whose id was never received; "
            "check the TTAPI dashboard first"
        )
    return (
        "Do not simply retry: check the TTAPI dashboard or usage for the result first"
        + call.slow_hint
    )


def protocol_error(call: Call, detail: str) -> errors.ProtocolError:
    """A 2xx answer whose body is unusable: the work was most likely done and billed."""
    billed = not call.idempotent
    return errors.ProtocolError(
        f"TTAPI {call.action} returned an unusable success response ({detail})",
        status=200,
        may_have_been_billed=billed,
        hint=maybe_done_hint(call) if billed else "Fetch the job again",
    )


def parse_images(payload: Any, call: Call) -> ImagesResponse:
    """An ImagesResponse from a decoded body, or ProtocolError."""
    try:
        return ImagesResponse.model_validate(payload)
    except ValidationError as exc:
        raise protocol_error(call, _first_problem(exc)) from None


def parse_job_id(payload: Any, call: Call) -> str:
    """E4's `data.jobId`, falling back to `data.job_id`."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if isinstance(data, dict):
        for key in ("jobId", "job_id"):
            value = data.get(key)
            if isinstance(value, str) and value:
                return value
    raise protocol_error(call, "no data.jobId in the answer")


def parse_job(payload: Any, call: Call) -> FourOJob:
    """E5's job object, or ProtocolError."""
    try:
        return FourOJob.model_validate(payload)
    except ValidationError as exc:
        raise protocol_error(call, _first_problem(exc)) from None


def _first_problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{where}: {first['msg']}"
