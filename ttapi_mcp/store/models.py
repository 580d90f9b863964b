"""Records the store hands out: plain pydantic models, decoded from SQLite rows."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, Field, computed_field

IMAGE_URI_PREFIX = "ttapi://images/"
_SECRET_KEY = re.compile(r"(api[_-]?key|authorization|token|secret|password|bearer)", re.I)


def scrub_secrets(value: Any) -> Any:
    """Drop dict keys that name credentials, recursively: parameters are stored and shown."""
    if isinstance(value, dict):
        return {k: scrub_secrets(v) for k, v in value.items() if not _SECRET_KEY.search(str(k))}
    if isinstance(value, list):
        return [scrub_secrets(v) for v in value]
    return value


def _loads(text: str | None, default: Any) -> Any:
    return json.loads(text) if text else default


class StoredImage(BaseModel):
    """One saved image: where it is, what it is, and how it was made."""

    id: str
    path: Path = Field(description="Absolute path of the file.")
    sha256: str
    bytes: int
    mime: str
    width: int | None = None
    height: int | None = None
    model: str | None = None
    prompt: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    source_url: str | None = None
    url_expires_at: float | None = None
    revised_prompt: str | None = None
    job_id: str | None = None
    request_id: str | None = None
    created_at: float

    @computed_field  # type: ignore[prop-decorator]
    @property
    def uri(self) -> str:
        return f"{IMAGE_URI_PREFIX}{self.id}"

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> StoredImage:
        data = dict(row)
        data["parameters"] = _loads(data.get("parameters"), {})
        return cls.model_validate(data)


SUMMARY_COLUMNS = "id, path, mime, bytes, width, height, model, prompt, created_at"


class ImageSummary(NamedTuple):
    """One saved image as a listing shows it, read straight from its row.

    A page of 50 full :class:`StoredImage` records took 0.5 ms to build (parsing each path
    and the parameters, validating 16 fields), most of a resources/list answer's time; the
    MCP ``Resource`` made from a summary is validated anyway.
    """

    id: str
    file_name: str
    mime: str
    bytes: int
    width: int | None
    height: int | None
    model: str | None
    prompt: str | None
    created_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ImageSummary:
        """From a row of :data:`SUMMARY_COLUMNS`."""
        return cls(row[0], os.path.basename(row[1]), *row[2:])


class JobRecord(BaseModel):
    """An asynchronous job as last seen: upstream status, result images, original request."""

    job_id: str
    kind: str = Field(description="'4o', 'generate' or 'edit'.")
    prompt: str | None = None
    status: str = Field(description="Upstream (ON_QUEUE, SUCCESS, FAILED, ...) or local status.")
    message: str | None = None
    upstream: dict[str, Any] | None = None
    image_ids: list[str] = Field(default_factory=list)
    request_args: dict[str, Any] | None = None
    created_at: float
    updated_at: float
    finished_at: float | None = None
    phase: str | None = Field(default=None, description="What the owner is doing now.")
    owner_id: str | None = Field(default=None, description="Server instance running the job.")
    owner_host: str | None = None
    owner_pid: int | None = None
    lease_until: float | None = Field(
        default=None, description="The owner's lease (epoch seconds): past it, the owner is gone."
    )
    collector_id: str | None = Field(
        default=None, description="Server instance polling TTAPI for this job's result."
    )
    collector_until: float | None = None
    dedupe_key: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> JobRecord:
        data = dict(row)
        data["upstream"] = _loads(data.get("upstream"), None)
        data["image_ids"] = _loads(data.get("image_ids"), [])
        data["request_args"] = _loads(data.get("request_args"), None)
        return cls.model_validate(data)


class ConsistencyReport(BaseModel):
    """Where the output folder and the database disagree."""

    files_without_rows: list[Path] = Field(default_factory=list)
    rows_without_files: list[str] = Field(default_factory=list, description="Image ids.")
    temp_files: list[Path] = Field(default_factory=list)
    objects_without_rows: list[str] = Field(
        default_factory=list, description="Names in the shared storage that no row records.")

    @property
    def ok(self) -> bool:
        return not (self.files_without_rows or self.rows_without_files or self.temp_files
                    or self.objects_without_rows)


class StoreError(ValueError):
    """Raised when something cannot be stored or read back: not an accepted image, a path
    outside the output folder, a bad cursor, a database from a newer release."""


class NotAnImageError(StoreError):
    """The bytes are not an accepted image (a repair leaves such a file or object alone)."""
