"""Choosing a backend from a location string, and the S3 connection settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..config import S3_CLIENT_MISSING
from .base import ImageStorage, StorageError
from .local import LocalFolder

if TYPE_CHECKING:
    from ..config import Settings


@dataclass(frozen=True)
class S3Options:
    """How to reach an S3-compatible service. Unset values come from the usual
    environment variables (``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``), read by the client itself."""

    endpoint: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    timeout_seconds: float = 60.0
    max_retries: int = 3


def open_storage(location: str | Path, s3: S3Options | None = None) -> ImageStorage:
    """``/a/folder`` or ``file:///a/folder`` -> LocalFolder; ``s3://bucket/prefix`` -> S3."""
    text = str(location)
    scheme = urlsplit(text).scheme if "://" in text else ""
    if scheme == "":
        return LocalFolder(Path(text))
    if scheme == "file":
        return LocalFolder(Path(urlsplit(text).path))
    if scheme == "s3":
        try:
            from .s3 import S3Bucket
        except ImportError:
            raise StorageError(S3_CLIENT_MISSING) from None

        return S3Bucket(text, s3 or S3Options())
    raise StorageError(f"unknown storage location {text!r}: use a folder path, file:///folder "
                       "or s3://bucket/prefix")


def shared_storage(settings: Settings) -> ImageStorage | None:
    """The bucket of ``storage_url``, or None when the output folder alone keeps the bytes."""
    if not settings.storage_url:
        return None
    secret = settings.storage_secret_access_key
    return open_storage(settings.storage_url, S3Options(
        endpoint=settings.storage_endpoint, region=settings.storage_region,
        access_key_id=settings.storage_access_key_id,
        secret_access_key=secret.get_secret_value() if secret else None,
        timeout_seconds=settings.connect_timeout + settings.download_timeout,
    ))
