"""Data models of the emulator: its options, injected faults and request-log records."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MIB = 1024 * 1024

# A1/A2: the async GPT route's submit and fetch (§11.6).
FaultRoute = Literal["E1", "E2", "E3", "E4", "E5", "A1", "A2", "M1", "download"]
FaultShape = Literal["openai", "envelope", "text", "empty"]
FaultKind = Literal[
    "status", "drop", "malformed_json", "truncated_b64", "truncated_image", "expired_url", "slow",
    "account_blocked", "stream_cut", "stream_malformed", "stream_no_completed",
]
RouteName = Literal["E1", "E2", "E3", "E4", "E5", "A1", "A2", "M1", "download", "hook",
                    "admin", "unknown"]


class EmulatorOptions(BaseModel):
    """Behaviour switches; mutable so tests can change them between requests."""

    model_config = ConfigDict(validate_assignment=True, extra="forbid")

    # Accepted keys; empty = any non-empty key.
    api_keys: list[str] = Field(default_factory=list)
    # Time a 4o job spends ON_QUEUE, after an optional PENDING_QUEUE phase.
    job_seconds: float = Field(default=3.0, ge=0)
    job_outcome: Literal["success", "failed"] = "success"
    job_failure_message: str = "job failed"
    pending_queue_seconds: float = Field(default=0.0, ge=0)
    # The key of the job id in a submit answer: TTAPI's 2026 example says job_id (§11.2).
    job_id_key: Literal["job_id", "jobId"] = "job_id"
    # Lifetime of result URLs (then 403, like a CDN).
    url_ttl_seconds: float = Field(default=3600.0, ge=0)
    # GPT answers use url + revised_prompt instead of b64_json (contract §9 #1).
    gpt_url_form: bool = False
    # A streamed answer (§11.4) spreads its events over this many seconds.
    stream_seconds: float = Field(default=0.2, ge=0)
    # Answer a streamed request with plain JSON (TTAPI may not relay the stream, §11.4).
    ignore_stream: bool = False
    # Added to every API route (E1-E5), not to downloads or admin routes.
    latency_seconds: float = Field(default=0.0, ge=0)
    # Noisy images about as large as real results (~2.4 MB PNG at 1024x1024), for benchmarks.
    photo_sized: bool = False
    hook_timeout: float = Field(default=10.0, gt=0)
    # The account (§11.7): starting balance in quota, lowered by each charged call's price
    # (see account.py); charge=False keeps it constant.
    starting_balance: float = Field(default=100_000.0, ge=0)
    charge: bool = True
    account_email: str = "demo.user@ttapi-emulator.test"
    max_queue: int = Field(default=10, ge=0)
    # Strict upper bounds in bytes for edit uploads (§8).
    max_gpt_image_bytes: int = Field(default=25 * MIB, gt=0)
    max_dalle2_image_bytes: int = Field(default=4 * MIB, gt=0)
    max_mask_bytes: int = Field(default=4 * MIB, gt=0)


class Fault(BaseModel):
    """A misbehaviour applied to the next `count` requests of one route."""

    model_config = ConfigDict(extra="forbid")

    route: FaultRoute
    count: int = Field(default=1, ge=1)
    status: int | None = Field(default=None, ge=100, le=599)
    shape: FaultShape | None = None
    message: str | None = None
    code: str | None = None
    retry_after: str | None = None
    delay: float = Field(default=0.0, ge=0)
    kind: FaultKind = "status"
    job_status: str | None = None


@dataclass
class RequestRecord:
    """One request as the emulator saw it; secrets in headers are masked."""

    method: str
    path: str
    route: RouteName
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    files: list[tuple[str, str | None, str | None, int]] = field(default_factory=list)
    query: dict[str, str] = field(default_factory=dict)
    time: float = field(default_factory=time.time)
    fault: str | None = None


@dataclass
class HookDelivery:
    """The outcome of one hookUrl notification."""

    job_id: str
    url: str
    status: int | None = None
    error: str | None = None
    body: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)
