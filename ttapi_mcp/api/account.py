"""The account balance (§11.7, §11.8): quota units, 1 USD = 100 quota.

The e-mail of the account is personal data: it is masked as it is parsed, so no result,
resource or log line built from an :class:`AccountInfo` can carry it.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

QUOTA_PER_USD = Decimal(100)


def mask_email(email: str | None) -> str | None:
    """``jane.doe@example.com`` → ``j***@e***.com``; None for no address."""
    if not email or "@" not in email:
        return None
    user, _, domain = email.partition("@")
    host, dot, tld = domain.rpartition(".")
    shown_host = f"{host[:1]}***{dot}{tld}" if host else f"{domain[:1]}***"
    return f"{user[:1]}***@{shown_host}"


def quota_text(quota: Decimal) -> str:
    """``Decimal('40.0')`` → ``'40'``, ``Decimal('12.50')`` → ``'12.5'``."""
    return f"{quota.normalize():f}"


class AccountInfo(BaseModel):
    """What ``GET /midjourney/v1/info`` says about the key's account."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    balance: Decimal = Field(description="Spendable quota (1 USD = 100 quota).")
    freeze_balance: Decimal = Field(default=Decimal(0),
                                    description="Quota held by running jobs.")
    max_queue: int | None = Field(default=None, description="How many jobs may queue at once.")
    email_masked: str | None = Field(default=None, description="The account e-mail, masked.")
    email_verified: bool | None = None
    created_at: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_wire(cls, value: Any) -> Any:
        """Take the envelope's ``data``; replace the e-mail by its mask at once."""
        if isinstance(value, dict) and isinstance(value.get("data"), dict):
            value = value["data"]
        if not isinstance(value, dict):
            return value
        flat = {k: v for k, v in value.items() if k not in ("email", "email_verified_at")}
        if "email" in value:
            flat["email_masked"] = mask_email(value.get("email"))
        if "email_verified_at" in value:
            flat["email_verified"] = value.get("email_verified_at") is not None
        return flat

    @field_validator("balance", "freeze_balance", mode="before")
    @classmethod
    def _quota(cls, value: Any) -> Decimal:
        if isinstance(value, bool) or value is None:
            raise ValueError("not a number")
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise ValueError(f"not a number: {str(value)[:40]!r}") from None

    @property
    def balance_usd(self) -> Decimal:
        return self.balance / QUOTA_PER_USD

    @property
    def freeze_usd(self) -> Decimal:
        return self.freeze_balance / QUOTA_PER_USD
