"""The account balance for people and agents: quota and dollars, never the e-mail."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ttapi_mcp.api import QUOTA_PER_USD, AccountInfo, TTAPIError, quota_text

from .common import ServiceError, Services


def _money(quota: Decimal) -> dict[str, float]:
    return {"quota": float(quota), "usd": float(quota / QUOTA_PER_USD)}


def account_summary(info: AccountInfo, warn_balance_below: float) -> dict[str, Any]:
    """The ``ttapi://account`` document (and doctor's numbers)."""
    low = info.balance < Decimal(str(warn_balance_below))
    summary: dict[str, Any] = {
        "balance": _money(info.balance),
        "frozen_balance": _money(info.freeze_balance),
        "max_queue": info.max_queue,
        "units": "quota; 1 USD = 100 quota, prepaid, never expires",
        "low_balance": low,
        "low_balance_threshold_quota": warn_balance_below,
    }
    if low:
        summary["warning"] = (
            f"The balance is {quota_text(info.balance)} quota (${info.balance_usd:.2f}), below the "
            f"warning level of {warn_balance_below:g}: top up the TTAPI account before "
            "large or many calls."
        )
    return summary


async def read_account(services: Services) -> dict[str, Any]:
    """Ask TTAPI for the balance; a failure is a complete sentence for the caller."""
    client = services.require_client()
    try:
        info = await client.account_info()
    except TTAPIError as exc:
        raise ServiceError(f"The account balance could not be read: {exc}") from None
    return account_summary(info, services.settings.warn_balance_below)
