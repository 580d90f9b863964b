"""Confirmation of expensive calls: ask the user through MCP elicitation before paying.

A call whose estimate is above ``confirm_above`` needs the user's yes. Each paid tool
has a resolver (the SDK's ``Resolve``) that runs before the tool body and returns the
question; the SDK asks it in either protocol era (a mid-call ``elicitation/create`` for
2025-11-25 clients, an ``InputRequiredResult`` round for 2026-07-28 ones). A client that
cannot elicit is not asked: the service then refuses with a message telling the agent
to ask the user and call again with ``confirm_cost`` (see ``service.money.admit``).
"""

from __future__ import annotations

from typing import Any

from mcp.server.elicitation import CancelledElicitation, DeclinedElicitation
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Elicit
from pydantic import BaseModel, Field

from ttapi_mcp.config import Settings

from .startup import services_of


class ConfirmSpend(BaseModel):
    """The form the user answers: accept (with proceed true) sends the call."""

    proceed: bool = Field(True, description="Send the call and pay the estimated cost.")


class NoQuestion(BaseModel):
    """A resolver's answer when nobody needs to be asked."""

    reason: str


def _can_elicit(ctx: Context) -> bool:
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


async def _ask(
    ctx: Context, tool: str, args: dict[str, Any], confirm_cost: float | None
) -> Elicit[ConfirmSpend] | NoQuestion:
    from ttapi_mcp.service import money

    settings = (await services_of(ctx.request_context.lifespan_context)).settings
    if settings.confirm_above is None or confirm_cost is not None:
        return NoQuestion(reason="no confirmation asked")
    quote = money.try_quote(settings, tool, args)
    if quote is None or quote.cost.estimate_quota <= settings.confirm_above:
        return NoQuestion(reason="below confirm_above")
    if not _can_elicit(ctx):
        return NoQuestion(reason="the client cannot elicit")
    return Elicit(money.question(quote), ConfirmSpend)


async def ask_generate(
    ctx: Context, model: str | None, n: int | None, size: str | None, quality: str | None,
    partial_images: int | None, confirm_cost: float | None,
) -> Elicit[ConfirmSpend] | NoQuestion:
    args = {"model": model, "n": n, "size": size, "quality": quality,
            "partial_images": partial_images}
    return await _ask(ctx, "generate_image", args, confirm_cost)


async def ask_edit(
    ctx: Context, images: list[str], model: str | None, n: int | None, size: str | None,
    quality: str | None, input_fidelity: str | None, partial_images: int | None,
    confirm_cost: float | None,
) -> Elicit[ConfirmSpend] | NoQuestion:
    args = {"images": images, "model": model, "n": n, "size": size, "quality": quality,
            "input_fidelity": input_fidelity, "partial_images": partial_images}
    return await _ask(ctx, "edit_image", args, confirm_cost)


async def ask_gpt4o(
    ctx: Context, model: str | None, size: str | None, confirm_cost: float | None
) -> Elicit[ConfirmSpend] | NoQuestion:
    return await _ask(ctx, "gpt4o_image", {"model": model, "size": size}, confirm_cost)


def confirmed_quota(
    settings: Settings, tool: str, args: dict[str, Any], outcome: Any,
    confirm_cost: float | None,
) -> float | None:
    """The quota the user agreed to, from the resolver's outcome (or ``confirm_cost``).

    Raises ``ToolError`` when the user declined or cancelled: nothing is sent.
    """
    from ttapi_mcp.service import money

    quote = money.try_quote(settings, tool, args)
    cost = f" {money.about(quote.cost.estimate_quota)}" if quote is not None else ""
    if isinstance(outcome, DeclinedElicitation):
        raise ToolError(f"The user declined to spend{cost} on this call: nothing was sent "
                        "and nothing was billed.")
    if isinstance(outcome, CancelledElicitation):
        raise ToolError(f"The user cancelled the confirmation of{cost}: nothing was sent "
                        "and nothing was billed.")
    data = getattr(outcome, "data", None)
    if isinstance(data, ConfirmSpend):
        if not data.proceed:
            raise ToolError(f"The user chose not to spend{cost} on this call: nothing was "
                            "sent and nothing was billed.")
        return quote.cost.estimate_quota if quote is not None else None
    return confirm_cost


def confirm_cost_number(value: Any) -> Any:
    """confirm_cost's check, worded for the agent (pydantic's own text is generic)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"confirm_cost must be a number of quota (the estimate the user "
                         f"agreed to, e.g. 25), got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"confirm_cost must be a number of quota (the estimate the user "
                         f"agreed to, e.g. 25), got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")) or number < 0:
        raise ValueError(f"confirm_cost must be a finite number of quota >= 0, got {value!r}")
    return number
