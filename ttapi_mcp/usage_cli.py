"""`ttapi-mcp usage`: the spend ledger as a table (or JSON), with today's and this month's
budgets left. Reads the store the server writes; sends nothing anywhere."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import anyio

from ttapi_mcp.config import Settings


def _period_line(p: dict[str, Any]) -> str:
    line = (f"{p['period'][:1].upper()}{p['period'][1:]}: {p['held_quota']:g} quota spent or "
            f"reserved in {p['calls']} call(s)")
    if p["budget_quota"] is None:
        return line + f" (no {p['budget_setting']} set)."
    return (line + f"; {p['budget_setting']} {p['budget_quota']:g}, {p['left_quota']:g} left, "
            f"resets at {p['resets_at']}.")


def _user_line(entry: dict[str, Any]) -> str:
    parts = []
    for p in (entry["today"], entry["this_month"]):
        part = f"{p['period'].split(' (')[0]} {p['held_quota']:g} quota in {p['calls']} call(s)"
        if p["budget_quota"] is None:
            parts.append(part + f" (no {p['budget_setting']} set)")
        else:
            parts.append(part + f" ({p['budget_setting']} {p['budget_quota']:g}, "
                         f"{p['left_quota']:g} left)")
    return f"User {entry['user']!r}: " + "; ".join(parts) + "."


async def _report(settings: Settings, since: str | None, by: Any) -> dict[str, Any]:
    from ttapi_mcp.periods import month_of
    from ttapi_mcp.service.usage import group, parse_since, usage_report
    from ttapi_mcp.store import ImageStore

    now = time.time()
    start = (parse_since(since, settings.budget_timezone) if since
             else month_of(now, settings.budget_timezone).start)
    async with ImageStore(settings.output_dir, settings.store_path,
                          database_url=settings.database_url_value()) as store:
        rows = await store.ledger_rows(since=start)
        report = await usage_report(store, settings, now)
    report["since"] = since or "the start of this month"
    report["by"] = by
    report["groups"] = group(rows, by, settings.budget_timezone)
    return report


def run_usage(settings: Settings, since: str | None, by: str, as_json: bool) -> int:
    """Print the usage report; 2 for a bad --since."""
    from ttapi_mcp.service.usage import table_text

    try:
        report = anyio.run(_report, settings, since, by)
    except ValueError as exc:
        print(f"ttapi-mcp usage: {exc}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"Spend since {report['since']} by {by}, in quota (1 USD = 100 quota); estimates "
          "except where TTAPI reported a quota.")
    print(table_text(report["groups"], by))  # type: ignore[arg-type]
    print(_period_line(report["today"]))
    print(_period_line(report["this_month"]))
    per_user = report["budget_per_user_day"] is not None or \
        report["budget_per_user_month"] is not None
    if per_user or len(report["users"]) > 1:
        for entry in report["users"]:
            print(_user_line(entry))
    return 0
