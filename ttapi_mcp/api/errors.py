"""Exceptions raised by the TTAPI client.

Every exception renders as one complete, user-facing sentence: what failed, what TTAPI
answered (status, code, message, parameter), whether the request may have been billed, and
what to do next. The client scrubs the API key from every text before it gets here.
"""

from __future__ import annotations


class TTAPIError(Exception):
    """Base class: any failure talking to TTAPI or downloading one of its results."""

    #: Whether the rendered text states the billing outcome (not meaningful for downloads).
    states_billing = True
    #: Who answered: TTAPI's API, or (for downloads) whatever host serves the result URL.
    answered_by = "TTAPI"

    def __init__(
        self,
        message: str,
        status: int | None = None,
        upstream_message: str | None = None,
        code: str | None = None,
        param: str | None = None,
        may_have_been_billed: bool = False,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.upstream_message = upstream_message
        self.code = code
        self.param = param
        self.may_have_been_billed = may_have_been_billed
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        parts = [_sentence(self.message)]
        upstream = self._upstream_text()
        if upstream:
            parts.append(upstream)
        if self.states_billing:
            parts.append(
                "It may have completed upstream and been billed."
                if self.may_have_been_billed
                else "It was not processed, so nothing was billed."
            )
        if self.hint:
            parts.append(_sentence(self.hint))
        return " ".join(parts)

    def _upstream_text(self) -> str:
        if self.status is None and not self.upstream_message:
            return ""
        text = f"{self.answered_by} answered"
        if self.status is not None:
            text += f" HTTP {self.status}"
        details = [f"code {self.code}"] if self.code else []
        if self.param:
            details.append(f"parameter {self.param}")
        if details:
            text += f" ({', '.join(details)})"
        if self.upstream_message:
            text += f": {self.upstream_message.strip()}"
        return _sentence(text)

    def __str__(self) -> str:
        return self._render()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._render()!r})"


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


class AuthenticationError(TTAPIError):
    """Raised on HTTP 401: the key is missing, unknown, or its e-mail is not activated."""


class AccountBlockedError(AuthenticationError):
    """Raised on HTTP 403 ("Account Block"): the key is known, the account may not call.

    Not retried and not billed; only TTAPI support can lift the block.
    """


class InsufficientBalanceError(TTAPIError):
    """Raised on HTTP 402: the TTAPI account has no balance left for this request."""


class InvalidRequestError(TTAPIError):
    """Raised on HTTP 400 (and other unlisted 4xx), or on a FAILED envelope with HTTP 200.

    TTAPI refused the parameters or files; `param` names the field when TTAPI says which.
    """


class ContentPolicyError(InvalidRequestError):
    """Raised on HTTP 400 with code `content_policy_violation` or `moderation_blocked`."""


class NotFoundError(TTAPIError):
    """Raised on HTTP 404: an unknown route (wrong base URL) or a job id TTAPI does not know.

    For a 4o job a 404 means "unknown to TTAPI", not "the job failed".
    """


class RateLimitError(TTAPIError):
    """Raised on HTTP 429 once retries are exhausted, or at once when Retry-After is too long."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class UpstreamServerError(TTAPIError):
    """Raised on HTTP 499, 500, 502, 503 and other 5xx except 504.

    After a 500 on a POST the request may have completed upstream: it is never retried.
    """


class GatewayTimeoutError(TTAPIError):
    """Raised on HTTP 504: a long synchronous call timed out at TTAPI's gateway.

    The generation may still finish upstream and be billed, so it is never retried.
    """


class ConnectionFailedError(TTAPIError):
    """Raised when no connection could be made (DNS, refused, TLS, connect time-out).

    Nothing reached TTAPI, so nothing was billed; raised after the retries are spent.
    """


class ResponseTimeoutError(TTAPIError):
    """Raised when the request was sent but no complete response came back.

    Covers read time-outs and connections reset or dropped mid-response: TTAPI may have
    processed (and billed) the request.
    """


class ProtocolError(TTAPIError):
    """Raised when TTAPI answered success but the body is malformed or lacks what it must carry.

    The request was most likely processed and billed.
    """


class DownloadError(TTAPIError):
    """Raised when a result URL cannot be downloaded: expired (403/404), too large, or failing.

    The generation itself was already paid for; the image may be lost if the URL has expired.
    """

    states_billing = False
    answered_by = "The image host"
