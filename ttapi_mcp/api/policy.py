"""Time-outs and the retry policy: how long to wait, when and how often to try again."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class Timeouts:
    """Seconds per call kind, from the contract's time-out table.

    gpt-image models can take minutes, DALL-E seconds; 4o submit and fetch are quick.
    """

    connect: float = 10.0
    dalle: float = 120.0
    gpt: float = 300.0
    job: float = 30.0
    download: float = 120.0

    def for_model(self, model: str) -> float:
        """Read time-out for a synchronous image call with this model."""
        return self.gpt if model.startswith("gpt-image") else self.dalle


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds on automatic retries: attempts in all, backoff, and total time spent."""

    max_attempts: int = 3
    base_delay: float = 1.0
    max_delay: float = 30.0
    max_total_seconds: float = 90.0

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter before retry number `attempt` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return random.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None if absent."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = now or datetime.now(timezone.utc)
    return max(0.0, (when - current).total_seconds())
