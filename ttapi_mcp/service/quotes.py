"""Estimates: what a call will cost, from the price table, and how to say it to a person.

TTAPI publishes no per-model prices (contract §11.8), so every figure here comes from
``catalog.prices`` (or the user's ``prices`` setting) and is called an estimate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ttapi_mcp.catalog.models import MODELS
from ttapi_mcp.catalog.prices import (
    MODEL_2_PLUS,
    MODEL_4O,
    QUOTA_PER_USD,
    merge_prices,
    price_per_image,
)
from ttapi_mcp.config import Settings

from .common import ServiceError
from .results import CostEstimate

NOT_SENT = "Not sent, so nothing was billed:"


@dataclass(frozen=True)
class Quote:
    """An estimate and the words that describe the call to a person."""

    cost: CostEstimate
    what: str
    images: int


def quota_text(quota: float) -> str:
    return f"{quota:.2f}".rstrip("0").rstrip(".")


def usd_text(quota: float) -> str:
    return f"${quota / QUOTA_PER_USD:.2f}"


def about(quota: float) -> str:
    return f"about {quota_text(quota)} quota ({usd_text(quota)})"


def _table(settings: Settings) -> Mapping[str, Any]:
    return merge_prices(settings.prices)


def quote_images(
    settings: Settings, params: Mapping[str, Any], *, legacy: bool = False,
    input_images: int = 0,
) -> Quote:
    """The estimate for a generate (or, with ``input_images``, an edit) call.

    ``params`` are the call's arguments with the model filled in. Raises ``KeyError`` or
    ``ValueError`` for a model, quality or size the table cannot price (the call's own
    validation then says what is wrong).
    """
    table = _table(settings)
    model = str(params["model"])
    spec = MODELS[model]
    n = int(params.get("n") or 1)
    quality, size = params.get("quality"), params.get("size")
    per_image, basis = price_per_image(table, model, quality, size)
    total = per_image * n
    parts = [f"{n} x {basis}"]
    entry = table[model]
    if input_images and spec.family == "gpt":
        extra = float(entry.get("input_image", 0.0))
        if params.get("input_fidelity") == "high":
            extra += float(entry.get("input_fidelity_high", 0.0))
        if extra:
            total += extra * input_images
            parts.append(f"{input_images} input image(s) x {quota_text(extra)} quota")
    partials = int(params.get("partial_images") or 0)
    if partials and spec.family == "gpt":
        total += float(entry.get("partial_image", 0.0)) * partials * n
        parts.append(f"{partials * n} partial image(s)")
    if legacy:
        factor = float(entry.get("legacy_route_factor", 1.0))
        total *= factor
        parts.append(f"x {factor:g} on TTAPI's legacy dall-e-3 route")
    total = round(total, 4)
    shown_size = size or spec.default_size
    shown_quality = quality or "auto"
    if spec.family == "dall-e":
        shown_quality = "hd" if quality == "hd" else "standard"
    noun = "image" if n == 1 else "images"
    what = f"{n} {noun} of {shown_size} at {shown_quality} quality with {model}"
    cost = CostEstimate(estimate_quota=total, estimate_usd=round(total / QUOTA_PER_USD, 4),
                        basis="estimate: " + "; ".join(parts))
    return Quote(cost=cost, what=what, images=n)


def priced(settings: Settings, params: Mapping[str, Any], **kwargs: Any) -> Quote:
    """:func:`quote_images` for validated parameters; a clear error instead of a crash."""
    try:
        return quote_images(settings, params, **kwargs)
    except (KeyError, ValueError, TypeError) as exc:
        raise ServiceError(
            f"{NOT_SENT} this call's cost could not be estimated from the price table "
            f"({type(exc).__name__}: {exc}). Check the 'prices' setting (see ttapi://models)."
        ) from None


def quote_job(settings: Settings, model: str | None = None, size: str | None = None) -> Quote:
    """A gpt4o_image job: its model's job price (GPT-4o image: TTAPI's flat 2 quota,
    charged on success only; gpt-image-2-plus scaled by the size's area)."""
    name = model or MODEL_4O
    price = float(_table(settings)[name]["job"])
    basis = f"{quota_text(price)} quota per {name} job"
    if name == MODEL_2_PLUS:
        width, _, height = (size or "3840x2160").partition("x")
        pixels = int(width) * int(height) if width.isdigit() and height.isdigit() else 0
        scale = max(1.0, (pixels or 3840 * 2160) / (1024 * 1024))
        price = round(price * scale, 4)
        basis += f" per 1024x1024 of area, x {scale:.2f} for {size or '3840x2160 (largest)'}"
    cost = CostEstimate(
        estimate_quota=price, estimate_usd=round(price / QUOTA_PER_USD, 4),
        basis=f"estimate: {basis} (charged on success, 0 on failure)",
    )
    return Quote(cost=cost, what=f"1 image with {name}", images=1)


def quote_4o(settings: Settings) -> Quote:
    return quote_job(settings)


def try_quote(settings: Settings, tool: str, args: Mapping[str, Any]) -> Quote | None:
    """The estimate for a tool call's raw arguments, or None when it cannot be priced
    (then the call's validation explains the problem). Never raises."""
    try:
        if tool == "gpt4o_image":
            return quote_job(settings, args.get("model"), args.get("size"))
        params = {k: v for k, v in args.items() if v is not None}
        default = settings.default_edit_model if tool == "edit_image" else \
            settings.default_generate_model
        params.setdefault("model", default)
        if settings.partial_images and MODELS[str(params["model"])].family == "gpt":
            params.setdefault("partial_images", settings.partial_images)  # as the service does
        if tool == "edit_image":
            return quote_images(settings, params, input_images=len(args.get("images") or []))
        legacy = params["model"] == "dall-e-3" and settings.dalle3_route == "legacy"
        return quote_images(settings, params, legacy=legacy)
    except Exception:
        return None


def question(quote: Quote) -> str:
    """What the user is asked before an expensive call."""
    return f"This will cost {about(quote.cost.estimate_quota)}: {quote.what}. Proceed?"
