"""Typed request and response models of the TTAPI wire contract.

Requests forbid unknown fields and serialize without unset options, because TTAPI's `/v1`
routes reject `null` and unknown parameters. Responses are tolerant: unknown fields are
ignored, optional fields may be missing, so a paid-for result is never lost to strictness.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from .b64values import B64Text

logger = logging.getLogger("ttapi_mcp.api")

TERMINAL_JOB_STATUSES = frozenset({"SUCCESS", "FAILED"})


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def to_wire(self) -> dict[str, Any]:
        """The JSON body: aliases applied, unset options left out (never `null`)."""
        return self.model_dump(by_alias=True, exclude_none=True)


class GenerationRequest(_Request):
    """E1 `POST /v1/images/generations`."""

    prompt: str
    model: str
    n: int | None = None
    size: str | None = None
    quality: str | None = None
    style: str | None = None
    background: str | None = None
    moderation: str | None = None
    output_format: str | None = None
    output_compression: int | None = None
    response_format: str | None = None
    stream: bool | None = None
    partial_images: int | None = None
    user: str | None = None


class EditRequest(_Request):
    """E2 `POST /v1/images/edits`: the text fields; the files travel beside it."""

    prompt: str
    model: str
    n: int | None = None
    size: str | None = None
    quality: str | None = None
    background: str | None = None
    moderation: str | None = None
    output_format: str | None = None
    output_compression: int | None = None
    response_format: str | None = None
    input_fidelity: str | None = None
    stream: bool | None = None
    partial_images: int | None = None
    user: str | None = None

    def to_form(self) -> dict[str, str]:
        """Multipart text fields: integers in decimal, booleans as `true`/`false`."""
        return {key: _form_value(value) for key, value in self.to_wire().items()}


def _form_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class LegacyDalle3Request(_Request):
    """E3 `POST /openai/v1/images/generations` (deprecated, dall-e-3 only; size required)."""

    prompt: str
    size: str
    model: str = "dall-e-3"
    n: int | None = None
    quality: str | None = None


class FourOSubmitRequest(_Request):
    """E4 `POST /openai/4o-image/generations`."""

    prompt: str
    refer_images: list[str] | None = Field(
        default=None,
        serialization_alias="referImages",
        validation_alias=AliasChoices("refer_images", "referImages"),
    )
    hook_url: str | None = Field(
        default=None,
        serialization_alias="hookUrl",
        validation_alias=AliasChoices("hook_url", "hookUrl"),
    )


class GptJobRequest(_Request):
    """`POST /openai/gpt/generations` (§11.6): a GPT image model as an asynchronous job."""

    prompt: str
    model: str
    refer_images: list[str] | None = Field(
        default=None,
        serialization_alias="referImages",
        validation_alias=AliasChoices("refer_images", "referImages"),
    )
    aspect_ratio: str | None = None
    size: str | None = None
    hook_url: str | None = Field(
        default=None,
        serialization_alias="hookUrl",
        validation_alias=AliasChoices("hook_url", "hookUrl"),
    )


@dataclass(frozen=True)
class UploadFile:
    """A file to upload, streamed from disk; `content_type` should come from sniffed bytes."""

    path: Path
    filename: str
    content_type: str


@dataclass(frozen=True)
class DownloadResult:
    """A result URL saved to disk."""

    path: Path
    bytes: int
    content_type: str | None


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ImageItem(_Response):
    """One result image: base64 bytes, a URL to download at once, or both.

    ``b64_json`` read by the client is a :class:`B64Text` view over the received body
    (decode either form with :func:`ttapi_mcp.api.decode_base64`).
    """

    b64_json: str | B64Text | None = None
    url: str | None = None
    revised_prompt: str | None = None

    @model_validator(mode="after")
    def _has_image(self) -> ImageItem:
        if not self.b64_json and not self.url:
            raise ValueError("image item carries neither b64_json nor url")
        return self


class TokenDetails(_Response):
    text_tokens: int | None = None
    image_tokens: int | None = None


class Usage(_Response):
    """Token usage of GPT models, recorded as billing evidence."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    input_tokens_details: TokenDetails | None = None


class ImagesResponse(_Response):
    """The OpenAI-shaped result of E1, E2 and (unwrapped) E3."""

    created: int
    data: list[ImageItem]
    background: str | None = None
    output_format: str | None = None
    quality: str | None = None
    size: str | None = None
    usage: Usage | None = None
    stream_missing: int = 0
    """Streamed answers only: images whose `completed` event never came (maybe billed)."""
    stream_problems: list[str] = Field(default_factory=list)

    @field_validator("usage", mode="wrap")
    @classmethod
    def _lenient_usage(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Usage | None:
        """Odd usage data must not discard images that were already paid for."""
        try:
            return handler(value)
        except ValidationError:
            logger.warning("ignoring unparseable usage object in TTAPI response")
            return None


class FourOJob(_Response):
    """The §4.5 job object of E5 (and of the hook), flattened: `data.*` lifted to the top."""

    job_id: str = Field(alias="jobId")
    status: str
    message: str | None = None
    image_url: str | None = Field(default=None, alias="imageUrl")
    quota: Decimal | None = None
    finish_time: str | None = Field(default=None, alias="finishTime")
    prompt: str | None = None
    refer_images: list[str] | None = Field(default=None, alias="referImages")
    hook_url: str | None = Field(default=None, alias="hookUrl")

    @model_validator(mode="before")
    @classmethod
    def _flatten(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        flat = dict(value.get("data") or {}) if isinstance(value.get("data"), dict) else {}
        flat.update({k: v for k, v in value.items() if k != "data"})
        if "jobId" not in flat and "job_id" in flat:
            flat["jobId"] = flat["job_id"]
        return flat

    @field_validator("quota", mode="before")
    @classmethod
    def _parse_quota(cls, value: Any) -> Decimal | None:
        """Quota is a decimal string (`"2"`) by contract; numbers are accepted too."""
        if value is None or isinstance(value, bool):
            return None
        try:
            return Decimal(str(value))
        except InvalidOperation:
            logger.warning("ignoring unparseable job quota %r", value)
            return None

    @property
    def is_terminal(self) -> bool:
        """SUCCESS and FAILED never change; any other status is still in progress."""
        return self.status in TERMINAL_JOB_STATUSES
