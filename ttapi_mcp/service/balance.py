"""The TTAPI balance, read before paid calls and kept for a short time.

Why: a call the account cannot cover would be refused by TTAPI anyway (HTTP 402); saying
so before sending, with the numbers, lets the agent stop and the user top up. The
balance is read at most once per ``balance_max_age_seconds`` (concurrent calls share one
read), lowered locally by each admitted call's estimate meanwhile, and a read that fails
or hangs leaves it unknown: an unknown balance never blocks a call.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from .common import Services

log = logging.getLogger("ttapi_mcp.service.balance")

READ_TIMEOUT_SECONDS = 5.0
"""Longest a call waits for the balance before going on without it."""


@dataclass
class BalanceCache:
    """The last balance read (quota), when it was read (monotonic), one read at a time."""

    quota: float | None = None
    read_at: float = -math.inf
    lock: anyio.Lock = field(default_factory=anyio.Lock)


async def known_balance(services: Services) -> float | None:
    """The balance in quota, fresh within ``balance_max_age_seconds``; None if unknown."""
    max_age = services.settings.balance_max_age_seconds
    client = services.client
    if max_age <= 0 or client is None:
        return None
    cache = services.balance
    async with cache.lock:
        if time.monotonic() - cache.read_at < max_age:
            return cache.quota
        quota: float | None = None
        with anyio.move_on_after(READ_TIMEOUT_SECONDS):
            try:
                quota = float((await client.account_info()).balance)
            except Exception as exc:  # unknown, not fatal: the call goes on
                log.info("the TTAPI balance could not be read: %s", exc)
        cache.quota, cache.read_at = quota, time.monotonic()
        return quota


def spend_locally(services: Services, quota: float) -> None:
    """Lower the kept balance by an admitted call's estimate until the next read."""
    cache = services.balance
    if cache.quota is not None:
        cache.quota -= quota


def low_balance_warning(services: Services) -> str | None:
    """One line for every result while the known balance is below ``low_balance_quota``."""
    quota = services.balance.quota
    threshold = services.settings.low_balance_quota
    if quota is None or quota >= threshold:
        return None
    return (f"the TTAPI balance is low: about {quota:.2f}".rstrip("0").rstrip(".")
            + f" quota (${quota / 100:.2f}) left, below low_balance_quota ({threshold:g}); "
            "top up at TTAPI.")
