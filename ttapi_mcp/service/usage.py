"""What was spent: the ledger summed by period, model, tool or day, with the budgets left.

One report serves the ``ttapi://usage`` resource and the ``ttapi-mcp usage`` command.
Amounts are quota (1 USD = 100 quota); a call's spend is what TTAPI reported where it
reports a quota (GPT-4o jobs), else its estimate; in-flight calls count as reserved.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from ttapi_mcp.catalog.prices import QUOTA_PER_USD
from ttapi_mcp.config import Settings
from ttapi_mcp.periods import Period, day_of, month_of, zone
from ttapi_mcp.store import ImageStore
from ttapi_mcp.store.users import LOCAL_USER

GroupBy = Literal["model", "tool", "day"]
NOTE = ("quota (1 USD = 100 quota). Spend is the estimate of each call that may have been "
        "billed, or the quota TTAPI reported where it reports one (GPT-4o jobs); calls still "
        "running are 'reserved'; calls that cannot have been billed count 0.")


def _key(row: dict[str, Any], by: GroupBy, tz_name: str) -> str:
    if by == "day":
        return datetime.fromtimestamp(row["created_at"], zone(tz_name)).strftime("%Y-%m-%d")
    return str(row.get(by) or "?")


def group(rows: Iterable[dict[str, Any]], by: GroupBy, tz_name: str) -> list[dict[str, Any]]:
    """Rows summed per model, tool or day: calls, spent, reserved, released calls."""
    groups: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = _key(row, by, tz_name)
        entry = groups.setdefault(key, {by: key, "calls": 0, "spent_quota": 0.0,
                                        "reserved_quota": 0.0, "released_calls": 0,
                                        "reported_quota": 0.0})
        entry["calls"] += 1
        if row["state"] == "spent":
            entry["spent_quota"] += row["held_quota"]
        elif row["state"] == "reserved":
            entry["reserved_quota"] += row["held_quota"]
        else:
            entry["released_calls"] += 1
        entry["reported_quota"] += row.get("reported_quota") or 0.0
    out = []
    for key in sorted(groups):
        entry = groups[key]
        for name in ("spent_quota", "reserved_quota", "reported_quota"):
            entry[name] = round(entry[name], 4)
        entry["spent_usd"] = round(entry["spent_quota"] / QUOTA_PER_USD, 4)
        out.append(entry)
    return out


def _period(rows: list[dict[str, Any]], period: Period, budget: float | None,
            tz_name: str, setting: str, detail: bool = True) -> dict[str, Any]:
    inside = [r for r in rows if period.start <= r["created_at"] < period.end]
    held = round(sum(r["held_quota"] for r in inside), 4)
    summary: dict[str, Any] = {
        "period": period.label,
        "held_quota": held,
        "spent_quota": round(sum(r["held_quota"] for r in inside if r["state"] == "spent"), 4),
        "reserved_quota": round(
            sum(r["held_quota"] for r in inside if r["state"] == "reserved"), 4),
        "calls": len(inside),
        "budget_setting": setting,
        "budget_quota": budget,
        "left_quota": None if budget is None else round(max(0.0, budget - held), 4),
        "resets_at": period.resets_at,
    }
    if detail:
        summary["by_model"] = group(inside, "model", tz_name)
        summary["by_tool"] = group(inside, "tool", tz_name)
    return summary


def _user(rows: list[dict[str, Any]], user: str, day: Period, month: Period,
          settings: Settings) -> dict[str, Any]:
    """One user's own spend today and this month, against the per-user budgets."""
    tz_name = settings.budget_timezone
    own = [r for r in rows if r["user_id"] == user]
    return {
        "user": user,
        "today": _period(own, day, settings.budget_per_user_day, tz_name,
                         "budget_per_user_day", detail=False),
        "this_month": _period(own, month, settings.budget_per_user_month, tz_name,
                              "budget_per_user_month", detail=False),
    }


async def usage_report(store: ImageStore, settings: Settings, now: float) -> dict[str, Any]:
    """Today and this month (in budget_timezone), account-wide, with the budgets left;
    in a request also the caller's own spend against the per-user budgets (``you``),
    outside one every user's (``users``), never another user's to a caller."""
    tz_name = settings.budget_timezone
    month = month_of(now, tz_name)
    day = day_of(now, tz_name)
    rows = await store.ledger_rows(since=min(month.start, day.start))
    caller = store.current_user()
    # A signed-in user sees the account's totals (its budgets bind them too), never what
    # the others made with it (the per-model and per-tool breakdowns).
    detail = caller in (None, LOCAL_USER)
    report: dict[str, Any] = {
        "unit": NOTE,
        "timezone": tz_name,
        "budget_per_call": settings.budget_per_call,
        "confirm_above": settings.confirm_above,
        "today": _period(rows, day, settings.budget_per_day, tz_name, "budget_per_day",
                         detail=detail),
        "this_month": _period(rows, month, settings.budget_per_month, tz_name,
                              "budget_per_month", detail=detail),
        "budget_per_user_day": settings.budget_per_user_day,
        "budget_per_user_month": settings.budget_per_user_month,
    }
    if caller is not None:
        report["you"] = _user(rows, caller, day, month, settings)
    else:
        users = sorted({str(r["user_id"]) for r in rows})
        report["users"] = [_user(rows, u, day, month, settings) for u in users]
    return report


def parse_since(text: str, tz_name: str) -> float:
    """A date (YYYY-MM-DD) at local midnight in ``tz_name``, as epoch seconds."""
    try:
        day = datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        raise ValueError(f"--since expects a date as YYYY-MM-DD, got {text!r}") from None
    return day.replace(tzinfo=zone(tz_name)).timestamp()


def table_text(groups: list[dict[str, Any]], by: GroupBy) -> str:
    """Groups as an aligned text table."""
    header = [by, "calls", "spent quota", "reserved quota", "spent USD", "not billed"]
    lines = [header]
    for g in groups:
        lines.append([str(g[by]), str(g["calls"]), f"{g['spent_quota']:g}",
                      f"{g['reserved_quota']:g}", f"{g['spent_usd']:.2f}",
                      str(g["released_calls"])])
    total = [sum(g["calls"] for g in groups), sum(g["spent_quota"] for g in groups),
             sum(g["reserved_quota"] for g in groups)]
    lines.append(["total", str(total[0]), f"{round(total[1], 4):g}", f"{round(total[2], 4):g}",
                  f"{total[1] / QUOTA_PER_USD:.2f}",
                  str(sum(g["released_calls"] for g in groups))])
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                  for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
        for row in lines
    )
