"""Budget periods: the day and the calendar month around a moment, in a chosen time zone.

A budget day begins at local midnight where the user lives, not in UTC, so the zone is
a setting (an IANA name, looked up with :mod:`zoneinfo`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache


@lru_cache(maxsize=8)
def zone(name: str) -> tzinfo:
    """The time zone called ``name``; ``ValueError`` (for a person) if there is none."""
    if name.upper() == "UTC":
        return timezone.utc
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as 'UTC', "
            "'Europe/Berlin' or 'America/New_York'"
        ) from None


@dataclass(frozen=True)
class Period:
    """[start, end) in epoch seconds, and how to name it to a person."""

    kind: str  # "day" | "month"
    start: float
    end: float
    label: str
    resets_at: str


def _local_midnight(day: datetime) -> datetime:
    return day.replace(hour=0, minute=0, second=0, microsecond=0)


def day_of(now: float, zone_name: str) -> Period:
    tz = zone(zone_name)
    local = datetime.fromtimestamp(now, tz)
    start = _local_midnight(local)
    end = _local_midnight((start + timedelta(days=1, hours=2)).astimezone(tz))
    return Period("day", start.timestamp(), end.timestamp(), f"today ({start:%Y-%m-%d})",
                  f"{end:%Y-%m-%d %H:%M} {zone_name}")


def month_of(now: float, zone_name: str) -> Period:
    tz = zone(zone_name)
    local = datetime.fromtimestamp(now, tz)
    start = _local_midnight(local.replace(day=1))
    following = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    end = _local_midnight(following)
    return Period("month", start.timestamp(), end.timestamp(), f"this month ({start:%Y-%m})",
                  f"{end:%Y-%m-%d %H:%M} {zone_name}")
