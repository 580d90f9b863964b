"""The account behind the key (§11.7, §11.8): a balance in quota that each charged call
lowers by the emulator's own price, 402 when a call cannot be covered.

TTAPI publishes no price table for E1/E2; these prices are the emulator's, so tests can
compare a client's estimate with what was spent. Jobs hold their price (frozen balance)
from submit and pay it on SUCCESS; a FAILED job costs nothing (§11.8).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .models import EmulatorOptions
from .shapes import ApiError

# Quota per image (1 USD = 100 quota).
IMAGE_PRICES: dict[str, float] = {
    "dall-e-2": 2.0, "dall-e-3": 4.0, "dall-e-3 hd": 8.0,
    "gpt low": 1.0, "gpt medium": 4.0, "gpt high": 16.0,
}
JOB_PRICES: dict[str, float] = {
    "gpt-4o-image": 2.0, "gpt-image-1": 4.0, "gpt-image-1.5": 4.0, "gpt-image-2": 4.0,
    "gpt-image-2-plus": 8.0,
}
CREATED_AT = "2026-01-05 09:30:00"


def image_price(model: str, quality: str, width: int, height: int, n: int) -> float:
    """The price of an E1/E2/E3 call: per image, by model and quality, GPT by area too."""
    if model == "dall-e-2":
        each = IMAGE_PRICES["dall-e-2"]
    elif model == "dall-e-3":
        each = IMAGE_PRICES["dall-e-3 hd" if quality == "hd" else "dall-e-3"]
    else:
        base = IMAGE_PRICES.get(f"gpt {quality}", IMAGE_PRICES["gpt high"])
        each = base * max(1.0, width * height / (1024 * 1024))
    return round(each * n, 4)


@dataclass
class _Hold:
    price: float
    settled: bool = False


@dataclass
class Account:
    """Balance and holds; read by ``GET /midjourney/v1/info``."""

    options: Callable[[], EmulatorOptions]
    ended_jobs: Callable[[], list[tuple[str, bool]]]
    """(job id, succeeded) of every job that has ended, so holds settle on any read."""
    spent: float = 0.0
    holds: dict[str, _Hold] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _frozen(self) -> float:
        return sum(h.price for h in self.holds.values() if not h.settled)

    def available(self) -> float:
        return self.options().starting_balance - self.spent - self._frozen()

    def charge(self, price: float, what: str) -> None:
        """Take ``price`` now, or refuse the call with 402 (nothing processed)."""
        self.cover(price, what)
        with self._lock:
            if self.options().charge:
                self.spent += price

    def hold(self, job_id: str, price: float) -> None:
        """Freeze ``price`` for a job (checked by :meth:`cover` first) until it ends."""
        if self.options().charge:
            with self._lock:
                self.holds[job_id] = _Hold(price)

    def _settle_ended(self) -> None:
        """Ended jobs pay their hold on success and release it on failure; once each."""
        for job_id, succeeded in self.ended_jobs():
            with self._lock:
                held = self.holds.get(job_id)
                if held is None or held.settled:
                    continue
                held.settled = True
                if succeeded:
                    self.spent += held.price

    def cover(self, price: float, what: str) -> None:
        """Refuse with 402 a call whose ``price`` the balance cannot cover."""
        if not self.options().charge or price <= 0:
            return
        self._settle_ended()
        with self._lock:
            left = self.available()
        if left < price:
            raise ApiError(402, f"Insufficient balance: {what} costs {price:g} quota and "
                                f"{max(left, 0):g} are left. Top up your TTAPI account.",
                           code="insufficient_balance", type_="insufficient_quota")

    def info(self) -> dict[str, Any]:
        opts = self.options()
        self._settle_ended()
        with self._lock:
            balance, frozen = self.available(), self._frozen()
        verified = datetime.fromtimestamp(0, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        return {"status": "SUCCESS", "message": "success", "data": {
            "email": opts.account_email, "email_verified_at": verified,
            "balance": round(balance, 4), "freeze_balance": round(frozen, 4),
            "max_queue": opts.max_queue, "created_at": CREATED_AT,
        }}

    def reset(self) -> None:
        with self._lock:
            self.spent = 0.0
            self.holds.clear()
