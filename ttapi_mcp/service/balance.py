"""The TTAPI balance, read in the background and kept for a short time.

Why: a call the account cannot cover would be refused by TTAPI anyway (HTTP 402, not
billed); saying so before sending, with the numbers, lets the agent stop and the user
top up. No call ever waits for the balance: a paid call that finds it older than
``balance_max_age_seconds`` (or never read) starts one read in the server's task group
and goes on. Until a read succeeds the balance is unknown, and an unknown balance never
blocks a call; a known one is lowered locally by each admitted call's estimate until the
next read.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from .common import Services

log = logging.getLogger("ttapi_mcp.service.balance")

READ_TIMEOUT_SECONDS = 10.0
"""Longest one background read may take; then the balance stays as it was."""


@dataclass
class BalanceCache:
    """The last balance read (quota) and when (monotonic); one read at a time."""

    quota: float | None = None
    read_at: float = -math.inf
    reading: bool = False


def fresh_balance(services: Services) -> float | None:
    """The balance in quota if read within ``balance_max_age_seconds``, else None; a
    stale (or missing) one starts a background read for the calls that follow."""
    max_age = services.settings.balance_max_age_seconds
    client, runner = services.client, services.runner
    if max_age <= 0 or client is None:
        return None
    cache = services.balance
    if time.monotonic() - cache.read_at < max_age:
        return cache.quota
    if not cache.reading and runner is not None:
        cache.reading = True

        async def read() -> None:
            try:
                with anyio.move_on_after(READ_TIMEOUT_SECONDS):
                    info = await client.account_info()
                    cache.quota, cache.read_at = float(info.balance), time.monotonic()
            except Exception as exc:  # unknown, not fatal: calls go on
                log.info("the TTAPI balance could not be read: %s", exc)
            finally:
                cache.reading = False

        runner.background(read, name="balance read")
    return None


def spend_locally(services: Services, quota: float) -> None:
    """Lower the kept balance by an admitted call's estimate until the next read."""
    cache = services.balance
    if cache.quota is not None:
        cache.quota -= quota


def low_balance_warning(services: Services) -> str | None:
    """One line for every result while the last known balance is below
    ``warn_balance_below``."""
    quota = services.balance.quota
    threshold = services.settings.warn_balance_below
    if quota is None or quota >= threshold:
        return None
    shown = f"{quota:.2f}".rstrip("0").rstrip(".")
    return (f"the TTAPI balance is low: about {shown} quota (${quota / 100:.2f}) left, below "
            f"warn_balance_below ({threshold:g}); top up at TTAPI.")
