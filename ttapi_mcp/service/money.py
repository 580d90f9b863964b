"""Money: confirm a call's estimate, hold it against the budgets, settle it at the end.

Every paid call goes through :func:`admit` before anything reaches TTAPI: its estimate
(see :mod:`.quotes`) is checked against ``confirm_above`` (the user must have agreed to
it), ``budget_per_call``, and the day and month budgets (account-wide, and per user for
the caller's own rows), where it is *reserved* in the store's ledger in one transaction
(see ``store.ledger``), so concurrent calls, in one
process or several on one database, can never overspend; then against the known TTAPI
balance (see :mod:`.balance`). When the call ends its reservation becomes spend (it may
have been billed) or is released (it cannot have been).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio

from ttapi_mcp.api import TTAPIError
from ttapi_mcp.config import Settings
from ttapi_mcp.periods import Period, day_of, month_of
from ttapi_mcp.store.ledger import Limit
from ttapi_mcp.store.users import LOCAL_USER

from .balance import fresh_balance, low_balance_warning, spend_locally
from .common import ServiceError, Services
from .quotes import (
    NOT_SENT,
    Quote,
    about,
    priced,
    question,
    quota_text,
    quote_4o,
    quote_images,
    quote_job,
    try_quote,
    usd_text,
)
from .results import ImageToolResult

if TYPE_CHECKING:
    from .localjobs import Admit
    from .progress import Ticker
    from .runner import LiveJob, Work

log = logging.getLogger("ttapi_mcp.service.money")

__all__ = [  # the estimates (from .quotes) are used through this module too
    "Quote", "about", "admit", "admitter", "announce", "attach_job", "billing_of", "finish",
    "job_ended", "paid", "priced", "question", "quote_4o", "quote_images", "quote_job",
    "settle", "try_quote",
]


def _confirmation_error(settings: Settings, quote: Quote, confirmed: float | None) -> str:
    estimate = quota_text(quote.cost.estimate_quota)
    if confirmed is None:
        lead = (f"this call will cost {about(quote.cost.estimate_quota)} (an estimate: "
                f"{quote.what}), above confirm_above ({quota_text(settings.confirm_above or 0)}"
                " quota), so the user must agree to it first.")
    else:
        lead = (f"confirm_cost={quota_text(confirmed)} is below this call's current estimate "
                f"of {about(quote.cost.estimate_quota)} ({quote.what}).")
    return (
        f"{NOT_SENT} {lead} Ask the user whether to spend {about(quote.cost.estimate_quota)}"
        f"; if they agree, call again with the same arguments and confirm_cost={estimate}."
    )


async def admit(
    services: Services, quote: Quote, *, tool: str, model: str, route: str,
    confirmed: float | None = None, job_id: str | None = None,
) -> str | None:
    """Check confirmation and budgets, then reserve the estimate; the ledger row's id
    (None only when the store failed and no day/month budget needed it).

    Raises ``ServiceError`` (the call must not be sent) with the whole story: the
    estimate, what the period has spent, what is left, when it resets, which setting.
    """
    settings = services.settings
    estimate = quote.cost.estimate_quota
    above = settings.confirm_above
    if above is not None and estimate > above + 1e-9 and (
        confirmed is None or confirmed + 1e-9 < estimate
    ):
        raise ServiceError(_confirmation_error(settings, quote, confirmed))
    if settings.budget_per_call is not None and estimate > settings.budget_per_call + 1e-9:
        raise ServiceError(
            f"{NOT_SENT} this call is estimated at {about(estimate)} ({quote.what}), above "
            f"budget_per_call ({quota_text(settings.budget_per_call)} quota). Ask for fewer "
            "images, a lower quality or a smaller size, or raise budget_per_call in the "
            "server configuration."
        )
    now = services.clock()
    budgets = _budgets(settings, now)
    limits = [limit for _, _, limit in budgets]
    try:
        reserved = await services.store.reserve(
            now=now, tool=tool, model=model, route=route, images=quote.images,
            estimate=estimate, basis=quote.cost.basis, limits=limits, job_id=job_id,
        )
    except Exception as exc:  # the store failed: budgets cannot be checked
        log.error("could not reserve %s quota in the ledger: %s", estimate, exc)
        if not limits:
            await _check_balance(services, quote, None)
            return None  # no budget to enforce: the call goes on, unrecorded
        raise ServiceError(
            f"{NOT_SENT} the day/month budgets could not be checked because the store "
            f"failed ({type(exc).__name__}: {exc}). Run 'ttapi-mcp doctor' to check it."
        ) from None
    if reserved.ledger_id is not None:
        await _check_balance(services, quote, reserved.ledger_id)
        return reserved.ledger_id
    assert reserved.refused_by is not None
    key, period, limit = budgets[reserved.refused_by]
    budget = limit.quota
    left = max(0.0, budget - reserved.held)
    if limit.per_user:
        user = services.store.current_user() or LOCAL_USER
        held = (f"{quota_text(budget)} quota per user and this user ({user!r}) has already "
                f"spent or reserved {quota_text(reserved.held)} quota {period.label}")
    else:
        held = (f"{quota_text(budget)} quota and {quota_text(reserved.held)} quota is "
                f"already spent or reserved {period.label}")
    raise ServiceError(
        f"{NOT_SENT} this call is estimated at {about(estimate)} ({quote.what}), but "
        f"{key} is {held}: {quota_text(left)} quota is left. The {period.kind}'s budget "
        f"resets at {period.resets_at}. Raise {key} in the server configuration to allow "
        "more, or make a cheaper call."
    )


def _budgets(settings: Settings, now: float) -> list[tuple[str, Period, Limit]]:
    """The day/month budgets that are set, account-wide then per user (a call must fit
    every one), each with its setting and period for the refusal's words."""
    zone = settings.budget_timezone
    found = []
    for key, quota, period_of, per_user in (
        ("budget_per_day", settings.budget_per_day, day_of, False),
        ("budget_per_month", settings.budget_per_month, month_of, False),
        ("budget_per_user_day", settings.budget_per_user_day, day_of, True),
        ("budget_per_user_month", settings.budget_per_user_month, month_of, True),
    ):
        if quota is not None:
            period = period_of(now, zone)
            found.append((key, period, Limit(period.start, period.end, quota, per_user)))
    return found


async def _check_balance(services: Services, quote: Quote, ledger_id: str | None) -> None:
    """Refuse (and forget the reservation) when the known, fresh balance cannot cover the
    estimate. Checked after the budgets, so a call they refuse reads nothing from TTAPI."""
    quota = fresh_balance(services)
    estimate = quote.cost.estimate_quota
    if quota is None or quota + 1e-9 >= estimate:
        spend_locally(services, estimate)
        return
    if ledger_id is not None:
        with anyio.CancelScope(shield=True):
            await services.store.drop_reservation(ledger_id)
    raise ServiceError(
        f"{NOT_SENT} the TTAPI balance is {quota_text(quota)} quota ({usd_text(quota)}) and "
        f"this call needs {about(estimate)} ({quote.what}). Top up at TTAPI, then call again "
        "(or make a cheaper call)."
    )


def finish(services: Services, result: ImageToolResult, quote: Quote) -> ImageToolResult:
    """The estimate (unless the result has one) and any low-balance warning, on a result."""
    result.cost = result.cost or quote.cost
    result.warning = low_balance_warning(services) or result.warning
    return result


async def settle(
    services: Services, ledger_id: str | None, *, billed: bool, outcome: str,
    reported_quota: float | None = None, usage: dict[str, Any] | None = None,
) -> None:
    """End a reservation; never raises (the call's own outcome matters more)."""
    if ledger_id is None:
        return
    with anyio.CancelScope(shield=True):
        try:
            await services.store.settle(ledger_id, billed=billed, outcome=outcome,
                                        reported_quota=reported_quota, usage=usage)
        except Exception:
            log.exception("could not record the end of ledger entry %s", ledger_id)


def billing_of(exc: BaseException) -> bool | None:
    """Whether a failure may have been billed, when a TTAPI error in its chain says so."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, TTAPIError):
            return seen.may_have_been_billed
        seen = seen.__cause__ or seen.__context__
    return None


def admitter(
    services: Services, quote: Quote, *, tool: str, model: str, route: str,
    confirmed: float | None,
) -> Admit:
    """For ``run_local``: admit the call when its job is about to start, and run its
    work so that the reservation is settled when it ends."""

    async def admit_work(work: Work, job_id: str) -> Work:
        ledger_id = await admit(services, quote, tool=tool, model=model, route=route,
                                confirmed=confirmed, job_id=job_id)
        return paid(services, ledger_id, work, quote)

    return admit_work


async def announce(ticker: Ticker, quote: Quote) -> None:
    """Say the estimate in the progress notifications, before anything is sent.

    Yielding first lets the ticker send the phase before (e.g. 'validating'), which
    would otherwise be replaced unsent; the estimate goes out at the next await (the
    reservation's), before any later phase replaces it.
    """
    await anyio.sleep(0)
    ticker.set(f"estimated cost {about(quote.cost.estimate_quota)} for {quote.what}")


def paid(
    services: Services, ledger_id: str | None, work: Work, quote: Quote | None = None
) -> Work:
    """``work`` that settles its reservation by how it ended.

    A result: spent (TTAPI answered). A TTAPI error says whether it may have been
    billed. Anything else (a crash, cancellation, the server stopping) counts as billed
    once the request may have reached TTAPI (``job.committed``), released before.
    """

    async def run(job: LiveJob) -> ImageToolResult:
        try:
            result = await work(job)
        except BaseException as exc:
            billed = billing_of(exc)
            if billed is None:
                billed = job.committed
            outcome = "error" if isinstance(exc, Exception) else "cancelled"
            await settle(services, ledger_id, billed=billed, outcome=outcome)
            raise
        await settle(services, ledger_id, billed=True, outcome=result.status,
                     usage=result.usage)
        if quote is not None:
            result.cost = quote.cost
        return result

    return run


async def attach_job(services: Services, ledger_id: str | None, job_id: str) -> None:
    """Link a reservation to its TTAPI job (shielded: the id must not be lost); never
    raises. A call stopped before this keeps its reservation, counted as spent."""
    if ledger_id is None:
        return
    try:
        with anyio.CancelScope(shield=True):
            await services.store.attach_job(ledger_id, job_id)
    except Exception:
        log.exception("could not link ledger entry %s to job %s", ledger_id, job_id)


async def job_ended(services: Services, job_id: str, status: str, quota: float | None) -> None:
    """A GPT-4o job ended: SUCCESS keeps its quota (TTAPI's, else the estimate), FAILED
    releases it (TTAPI charges 0). Never raises."""
    if status not in ("SUCCESS", "FAILED"):
        return
    try:
        ledger_id = await services.store.reservation_for_job(job_id)
    except Exception:
        log.exception("could not look up the ledger entry of job %s", job_id)
        return
    billed = status == "SUCCESS" or bool(quota)
    await settle(services, ledger_id, billed=billed, outcome=status.lower(),
                 reported_quota=quota)
